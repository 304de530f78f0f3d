"""Published dimensions of the benchmark models (techspec §1.1 and the model cards' config.json values).

Speed does not depend on weight values: benchmarks/models.py builds random checkpoints of these sizes.
"""

SIGLIP_400M_448 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                       image_size=980, patch_size=14)  # MiniCPM-V's navit SigLIP: 70x70 position table
SIGLIP_SO400M_224 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                         image_size=224, patch_size=14, projection_dim=2048)
QWEN2_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936, rope_theta=1000000.0, max_position_embeddings=32768)
QWEN2_15B = dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                 intermediate_size=8960, vocab_size=151936, rope_theta=1000000.0, max_position_embeddings=32768)
# llava-hf/llava-onevision-qwen2-0.5b-ov-hf: SigLIP So400m/14 @384 with its last layer dropped by the converter
# (26 layers; features from the last, no post-layernorm), Qwen2-0.5B text with the head tied to its embeddings.
SIGLIP_SO400M_384_26 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=26, num_attention_heads=16,
                            image_size=384, patch_size=14)
QWEN2_05B_LLAVA_OV = dict(QWEN2_05B, vocab_size=152000, tie_word_embeddings=True)
# MiniCPM-V 4.6's text model (openbmb/MiniCPM-V-4.6 config.json text_config: Qwen3.5-0.8B): 24 layers, every
# 4th full attention (gated, 8 heads / 2 KV heads x 256), the rest Gated DeltaNet (16 + 16 heads x 128), tied head.
QWEN35_08B = dict(hidden_size=1024, intermediate_size=3584, num_hidden_layers=24, full_attention_interval=4,
                  num_attention_heads=8, num_key_value_heads=2, head_dim=256, linear_num_key_heads=16,
                  linear_num_value_heads=16, linear_key_head_dim=128, linear_value_head_dim=128, linear_conv_kernel_dim=4,
                  vocab_size=248094, max_position_embeddings=32768)
# ... and its vision tower: the navit SigLIP-400M with the window-attention merger after layer 6
SIGLIP_400M_WINDOW = dict(SIGLIP_400M_448, insert_layer_id=6)
# Qwen2-VL-2B (Qwen/Qwen2-VL-2B-Instruct config.json): the 675M-class ViT (32 blocks of 1280, 16 heads, MLP 5120,
# 2x2 merger into the LLM width) and a Qwen2-1.5B text model rotated with M-RoPE sections [16, 24, 24], tied head.
QWEN2VL_VIT_675M = dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4, hidden_size=1536, patch_size=14,
                        spatial_merge_size=2, temporal_patch_size=2)
QWEN2VL_2B_TEXT = dict(QWEN2_15B, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
                       tie_word_embeddings=True)
GEMMA_2B = dict(hidden_size=2048, num_hidden_layers=18, num_attention_heads=8, num_key_value_heads=1, head_dim=256,
                intermediate_size=16384, vocab_size=257216, max_position_embeddings=8192)
# SmolVLM-256M-Instruct: SigLIP base/16 @512 (93M), pixel shuffle 4 (64 tokens per 512-px tile), SmolLM2-135M text
SIGLIP_B16_512 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                      image_size=512, patch_size=16)
SMOLLM2_135M = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                    intermediate_size=1536, vocab_size=49280, rope_theta=100000.0, max_position_embeddings=8192)
# InternVL3-1B(-hf): InternViT-300M-448px-V2.5 (24 layers, 1024 hidden), pixel shuffle 0.5 (256 tokens per 448-px
# tile), MLP projector, Qwen2.5-0.5B text (vocab 151674) with an untied head (0.94B parameters in all)
INTERNVIT_300M = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                      image_size=[448, 448], patch_size=[14, 14])
QWEN25_05B = dict(QWEN2_05B, vocab_size=151674)

