package org.edgevlm.core;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.Map;

/**
 * Reads {@code bundle/manifest.json}, refuses any path it names that leaves the bundle, and verifies every listed
 * file's size and sha256: edgevlm/manifest/files.py {@code read_manifest}, same order and messages.
 */
public final class BundleReader {
    public static final String MANIFEST_NAME = "manifest.json";

    private BundleReader() {
    }

    public static Manifest read(String bundleDir, boolean verify) {
        Path root = Paths.get(bundleDir);
        if (!Files.isDirectory(root)) {
            throw new BundleException(root + ": not a bundle directory (it does not exist or is a file). "
                    + "Pass the directory written by `edgevlm export`.");
        }
        Path path = root.resolve(MANIFEST_NAME);
        if (!Files.isRegularFile(path)) {
            throw new BundleException(root + ": no " + MANIFEST_NAME + " here, so this is not an edgevlm bundle. "
                    + "Create one with `edgevlm export CHECKPOINT -o OUT`.");
        }
        Object json;
        try {
            byte[] raw = Files.readAllBytes(path);
            String text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(raw)).toString();
            json = Json.parse(text);
        } catch (IllegalArgumentException | CharacterCodingException ex) {
            throw new BundleException(path + ": not valid JSON (" + ex.getMessage()
                    + "). The bundle is damaged: re-copy or re-export it.");
        } catch (IOException ex) {
            throw new BundleException(path + ": cannot be read (" + ex.getMessage() + "). Check the file permissions.");
        }
        Manifest manifest = Manifest.fromJson(json, path.toString());
        for (String[] named : manifest.paths()) {
            inside(root, named[1], named[0]);
        }
        if (verify) {
            verifyFiles(root, manifest);
        }
        return manifest;
    }

    /** Every listed file exists with the recorded size and sha256, in the manifest's order. */
    public static void verifyFiles(Path root, Manifest manifest) {
        for (Map.Entry<String, Manifest.FileRecord> e : manifest.files.entrySet()) {
            Path file = inside(root, e.getKey(), "file");
            if (!Files.isRegularFile(file)) {
                throw new BundleException(root + ": file " + e.getKey() + " listed in the manifest is missing. The bundle "
                        + "was copied incompletely: copy the whole directory again or re-export it.");
            }
            long size;
            try {
                size = Files.size(file);
            } catch (IOException ex) {
                throw new BundleException(file + ": cannot be read (" + ex.getMessage() + "). Check the file permissions.");
            }
            Object expected = e.getValue().size;
            if (!(expected instanceof Long) || (Long) expected != size) {
                throw new BundleException(file + ": size " + size + " bytes, the manifest says " + Py.repr(expected)
                        + ". The file was truncated or modified: re-copy the bundle or re-export it.");
            }
            if (!sha256Hex(file).equals(e.getValue().sha256)) {
                throw new BundleException(file + ": sha256 does not match the manifest. The file was modified or "
                        + "corrupted: re-copy the bundle or re-export it.");
            }
        }
    }

    /**
     * {@code root/rel} if it stays inside the bundle {@code root} (symlinks followed), else a BundleException naming
     * it (manifest/files.py {@code inside}): a tampered manifest cannot make the app read {@code ../x.onnx}, an
     * absolute path, or a file a link inside the bundle points out to.
     */
    public static Path inside(Path root, String rel, String what) {
        if (rel == null || rel.isEmpty() || rel.startsWith("/") || Arrays.asList(rel.split("/")).contains("..")) {
            throw new BundleException(root + ": the manifest names " + what + " " + Py.repr(rel) + ", a path outside the "
                    + "bundle. Every file a bundle uses must be inside its directory: the bundle was tampered with; "
                    + "re-export it.");
        }
        Path path = root.resolve(rel);
        Path real = realPath(path, 0);
        if (!real.startsWith(realPath(root, 0))) {
            throw new BundleException(path + ": " + what + " " + Py.repr(rel) + " is a link to " + real + ", outside the "
                    + "bundle. Every file a bundle uses must be inside its directory: the bundle was tampered with; "
                    + "re-export it.");
        }
        return path;
    }

    /**
     * Python's {@code os.path.realpath} (not strict): every link resolved, and a path that does not exist resolved
     * as far as it exists (a missing file is reported by the verification, not here).
     */
    private static Path realPath(Path path, int depth) {
        try {
            return path.toRealPath();
        } catch (IOException missingOrLoop) {
            Path abs = path.toAbsolutePath();
            Path parent = abs.getParent();
            if (parent == null || abs.getFileName() == null || depth > 40) { // 40: the kernel's limit on links followed
                return abs;
            }
            Path joined = realPath(parent, depth + 1).resolve(abs.getFileName());
            if (Files.isSymbolicLink(joined)) { // a dangling link: where it points
                try {
                    return realPath(joined.resolveSibling(Files.readSymbolicLink(joined)), depth + 1);
                } catch (IOException ex) {
                    return joined;
                }
            }
            return joined;
        }
    }

    public static String sha256Hex(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            byte[] block = new byte[1 << 20];
            for (int n; (n = in.read(block)) > 0; ) {
                digest.update(block, 0, n);
            }
            return hex(digest.digest());
        } catch (IOException ex) {
            throw new BundleException(file + ": cannot be read (" + ex.getMessage() + "). Check the file permissions.");
        } catch (NoSuchAlgorithmException ex) {
            throw new IllegalStateException("SHA-256 is missing from this Java runtime", ex);
        }
    }

    public static String hex(byte[] bytes) {
        StringBuilder out = new StringBuilder(bytes.length * 2);
        for (byte b : bytes) {
            out.append(Character.forDigit((b >> 4) & 15, 16)).append(Character.forDigit(b & 15, 16));
        }
        return out.toString();
    }
}
