"""Input robustness of ``load_image``: orientation, mode conversions, and one clear error per bad file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgevlm.errors import ImageError
from edgevlm.processing.images import load_image


def _png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # wide: left half red, right half blue
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.png"
    Image.fromarray(pixels).save(path, exif=exif.tobytes())
    image = load_image(path)
    assert image.size == (20, 40) and image.mode == "RGB"
    assert image.getpixel((10, 5)) == (255, 0, 0)  # the left half is now on top
    assert image.getpixel((10, 35)) == (0, 0, 255)


def test_grayscale_and_bilevel_become_rgb():
    gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    rgb = np.asarray(load_image(gray))
    assert rgb.shape == (16, 16, 3) and (rgb[..., 0] == np.asarray(gray)).all() and (rgb[..., 0] == rgb[..., 2]).all()
    assert load_image(gray.convert("1")).mode == "RGB"


def test_rgba_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (255, 0, 0, 0)  # fully transparent
    rgba[1, 0] = (0, 0, 0, 128)  # half black
    rgb = np.asarray(load_image(_png_bytes(Image.fromarray(rgba, "RGBA"))))
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[0, 1]) == (255, 255, 255)
    assert all(120 <= v <= 135 for v in rgb[1, 0])


def test_palette_with_transparency_is_composited_on_white():
    palette_image = Image.new("P", (4, 4), 1)
    palette_image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette_image.putpixel((0, 0), 0)
    data = _png_bytes(palette_image, transparency=0)  # index 0 transparent
    rgb = load_image(data)
    assert rgb.getpixel((0, 0)) == (255, 255, 255) and rgb.getpixel((1, 1)) == (10, 200, 30)
    assert load_image(Image.new("P", (3, 3), 0)).mode == "RGB"


def test_cmyk_becomes_rgb():
    cmyk = Image.new("CMYK", (3, 3), (0, 0, 0, 0))
    assert load_image(cmyk).getpixel((1, 1)) == (255, 255, 255)
    assert load_image(Image.new("CMYK", (3, 3), (0, 255, 255, 0))).getpixel((0, 0)) == (255, 0, 0)


def test_16_bit_grayscale_is_scaled_not_clipped():
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    data = _png_bytes(Image.fromarray(values))  # uint16 -> mode "I;16"
    rgb = np.asarray(load_image(data))
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255] and rgb.shape == (1, 4, 3)


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"", "not a readable image"),
        (b"this is not an image at all", "not a readable image"),
    ],
)
def test_garbage_bytes_give_one_line_image_error(payload, match):
    with pytest.raises(ImageError, match=match) as info:
        load_image(payload)
    assert "\n" not in str(info.value) and "<image bytes>" in str(info.value)


def test_truncated_file_names_the_file(tmp_path):
    rng = np.random.default_rng(0)
    data = _png_bytes(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png") as info:
        load_image(path)
    assert "\n" not in str(info.value)

    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
    jpeg_path = tmp_path / "cut.jpg"
    jpeg_path.write_bytes(jpeg.getvalue()[:300])
    with pytest.raises(ImageError, match="cut.jpg"):
        load_image(jpeg_path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ImageError, match="nope.png"):
        load_image(tmp_path / "nope.png")


def test_zero_sized_image_is_refused():
    with pytest.raises(ImageError, match="zero size"):
        load_image(Image.new("RGB", (0, 5)))


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000)).save(path)
    with pytest.raises(ImageError, match=r"big.png.*6000000 pixels.*limit of 5000000"):
        load_image(path, max_pixels=5_000_000)
    assert load_image(path, max_pixels=None).size == (3000, 2000)
    assert load_image(path, max_pixels=6_000_000).size == (3000, 2000)


def test_rgb_pil_images_pass_through_unchanged():
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (7, 9, 3), dtype=np.uint8))
    assert load_image(image).tobytes() == image.tobytes()


def test_processing_imports_neither_torch_nor_transformers():
    import subprocess
    import sys

    code = (
        "import sys, edgevlm.processing, edgevlm.processing.prompt, edgevlm.processing.tokenizer;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unsupported_source_type_is_an_image_error():
    with pytest.raises(ImageError, match="from a list"):
        load_image([1, 2, 3])
