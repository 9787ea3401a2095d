"""MuseTalk 1.5's published figures, written in as data (no code of MuseTalk's is used or copied).

Provenance:
- UNET: `models/musetalkV15/musetalk.json`, the UNet config MuseTalk's authors publish with their weights
  (TMElyralab/MuseTalk, README "weights" layout; loaded there into `diffusers.UNet2DConditionModel(**config)`).
- VAE: `stabilityai/sd-vae-ft-mse`'s `config.json` (the `sd-vae/` folder MuseTalk uses), an AutoencoderKL whose
  scaling factor is diffusers' default 0.18215, which MuseTalk reads from the VAE's config.
- WHISPER: `openai/whisper-tiny`'s `config.json` (the `whisper/` folder): encoder width 384, 4 layers, 6 heads.
- The pipeline facts below (lower-half mask, t = 0, 5 stacked hidden states, 2 feature frames per video frame
  with 2 video frames of zero padding each side, the 384-wide sinusoidal positional encoding) come from reading
  MuseTalk's public inference code at commit 0a89dec45a0192b824e3cf4daf96c239440c5ed8.

MuseTalk is MIT licensed:

    MIT License
    Copyright (c) 2024 Tencent Music Entertainment Group
    Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
    documentation files (the "Software"), to deal in the Software without restriction, including without
    limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
    the Software, and to permit persons to whom the Software is furnished to do so, subject to the following
    conditions: The above copyright notice and this permission notice shall be included in all copies or
    substantial portions of the Software.
    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.
"""

UPSTREAM_COMMIT = "0a89dec45a0192b824e3cf4daf96c239440c5ed8"

# musetalkV15/musetalk.json (the keys diffusers reads; "_class_name"/"_diffusers_version" left out).
UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 384,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 8,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

# stabilityai/sd-vae-ft-mse config.json.
VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 256,
}
VAE_SCALING = 0.18215

# openai/whisper-tiny config.json (the encoder's fields, plus the decoder's so WhisperModel builds the same
# checkpoint layout).
WHISPER = {
    "d_model": 384,
    "encoder_layers": 4,
    "encoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_layers": 4,
    "decoder_attention_heads": 6,
    "decoder_ffn_dim": 1536,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "vocab_size": 51865,
    "activation_function": "gelu",
    "scale_embedding": False,
}

# The reduced-size configuration for CI: the same classes and code path, few channels and layers. Whisper keeps
# 4 layers (so 5 stacked states, as MuseTalk stacks) and its 30 s window (1500 positions at 50 frames/s, the
# feature extractor's padding); everything else is narrow.
SMALL_UNET = dict(UNET, block_out_channels=[32, 64, 64, 64], layers_per_block=1, norm_num_groups=8,
                  cross_attention_dim=64)
SMALL_VAE = dict(VAE, block_out_channels=[8, 16, 32, 32], layers_per_block=1, norm_num_groups=8)
SMALL_WHISPER = dict(WHISPER, d_model=64, encoder_attention_heads=2, encoder_ffn_dim=128, decoder_layers=1,
                     decoder_attention_heads=2, decoder_ffn_dim=128)

FACE_SIZE = 256            # the crop MuseTalk resizes every face to
LATENT_SIZE = 32           # 256 / 8 (the VAE's three downsamplings)
TIMESTEP = 0               # one UNet step at t = 0: in-painting, not diffusion sampling
FEATURE_RATE = 50          # whisper encoder frames per second (hop 160 samples, then stride 2)
FEATURE_WINDOW = 10        # feature frames per video frame: 2 per frame x (2 + 1 + 2) frames
FEATURE_OFFSET = -4        # 2 video frames of zero padding on the left = 4 feature frames
PE_MAX_LEN = 5000          # the positional encoding's table (only the first 50 rows are ever used)
