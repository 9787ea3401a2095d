"""The three graphs of a MuseTalk 1.5 pack, as thin torch modules around the upstream classes.

Nothing of MuseTalk's network is re-implemented: the UNet is `diffusers.UNet2DConditionModel`, the VAE
`diffusers.AutoencoderKL`, the audio encoder `transformers.WhisperModel`'s encoder, built from the published
configs (facts.py) or loaded from the user's weights. What is ours is the glue the lipcast contract needs
(docs/models.md, "Generator packs"): the log-mel front end inside `audio.onnx` (the worker feeds PCM), the
lower-half mask inside `prepare.onnx`, the window reshape and positional encoding inside `generate.onnx`.

`dtype` float16 builds the fp16 variant: weights and activations in half precision, inputs and outputs in
float32 (the worker's tensors), the log-mel front end in float32 (its power spectrum exceeds half's range, and
MuseTalk computes it in float32 with numpy too).
"""

import json
import math
import pathlib

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel
from transformers.audio_utils import window_function

from . import facts


class Networks:
    """The upstream modules (eval mode, float32), random or loaded, and the feature extractor's parameters."""

    def __init__(self, unet, vae, whisper_encoder, feature_extractor, source):
        self.unet, self.vae, self.encoder = unet.eval(), vae.eval(), whisper_encoder.eval()
        self.fe = feature_extractor
        self.source = source
        self.cross_dim = unet.config.cross_attention_dim
        self.layers = whisper_encoder.config.encoder_layers + 1  # the embedding's output and each layer's
        self.width = whisper_encoder.config.d_model
        if self.cross_dim != self.width:
            raise ValueError(f"UNet cross_attention_dim {self.cross_dim} != whisper d_model {self.width}")

    @classmethod
    def random(cls, size, seed):
        """The published configs (or the reduced CI size) with random weights, in the checkpoint's layout."""
        torch.manual_seed(seed)
        unet_cfg, vae_cfg, wh_cfg = {
            "full": (facts.UNET, facts.VAE, facts.WHISPER),
            "small": (facts.SMALL_UNET, facts.SMALL_VAE, facts.SMALL_WHISPER),
        }[size]
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
        whisper = WhisperModel(WhisperConfig(**wh_cfg))
        # The extractor is built here from its defaults (whisper-tiny's: 80 mels, n_fft 400, hop 160, 30 s):
        # nothing is downloaded.
        fe = WhisperFeatureExtractor(feature_size=wh_cfg["num_mel_bins"])
        nets = cls(unet, vae, whisper.encoder, fe, f"random weights, {size} size, seed {seed}")
        nets.whisper, nets.unet_config = whisper, unet_cfg
        return nets

    def save_layout(self, folder):
        """Writes random networks in the authors' layout and file formats (what their download script fetches:
        unet.pth, sd-vae's diffusion_pytorch_model.bin, whisper's pytorch_model.bin with the "model." prefix of
        WhisperForConditionalGeneration's checkpoint), to test the real-weights path with `load`."""
        folder = pathlib.Path(folder)
        (folder / "musetalkV15").mkdir(parents=True, exist_ok=True)
        (folder / "musetalkV15" / "musetalk.json").write_text(json.dumps(
            {"_class_name": "UNet2DConditionModel", **self.unet_config}, indent=1))
        torch.save(self.unet.state_dict(), folder / "musetalkV15" / "unet.pth")
        self.vae.save_pretrained(folder / "sd-vae", safe_serialization=False)
        (folder / "whisper").mkdir(exist_ok=True)
        self.whisper.config.save_pretrained(folder / "whisper")
        torch.save({"model." + k: v for k, v in self.whisper.state_dict().items()},
                   folder / "whisper" / "pytorch_model.bin")
        self.fe.save_pretrained(folder / "whisper")

    @classmethod
    def load(cls, folder):
        """The authors' layout: musetalkV15/{musetalk.json,unet.pth}, sd-vae/, whisper/ (local files only)."""
        folder = pathlib.Path(folder)
        cfg = json.loads((folder / "musetalkV15" / "musetalk.json").read_text())
        unet = UNet2DConditionModel(**{k: v for k, v in cfg.items() if not k.startswith("_")})
        state = torch.load(folder / "musetalkV15" / "unet.pth", map_location="cpu", weights_only=True)
        unet.load_state_dict(state, strict=True)
        # from_pretrained fills weights missing from a file with random ones and only warns: refuse that.
        vae, info = AutoencoderKL.from_pretrained(folder / "sd-vae", local_files_only=True, output_loading_info=True)
        _no_missing("sd-vae", info)
        if abs(vae.config.scaling_factor - facts.VAE_SCALING) > 1e-9:
            raise ValueError(f"sd-vae scaling_factor {vae.config.scaling_factor}, MuseTalk uses {facts.VAE_SCALING}")
        whisper = folder / "whisper"
        model, info = WhisperModel.from_pretrained(whisper, local_files_only=True, output_loading_info=True)
        _no_missing("whisper", {"missing_keys": [k for k in info["missing_keys"] if k.startswith("encoder.")]})
        encoder = model.encoder
        if (whisper / "preprocessor_config.json").exists():
            fe = WhisperFeatureExtractor.from_pretrained(whisper, local_files_only=True)
        else:
            fe = WhisperFeatureExtractor(feature_size=encoder.config.num_mel_bins)
        return cls(unet, vae, encoder, fe, f"weights from {folder}")

    def params(self):
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        return {"unet": count(self.unet), "vae_encoder": count(self.vae.encoder) + count(self.vae.quant_conv),
                "vae_decoder": count(self.vae.decoder) + count(self.vae.post_quant_conv),
                "whisper_encoder": count(self.encoder)}


def _no_missing(what, info):
    if info["missing_keys"]:
        raise ValueError(f"{what}: the checkpoint lacks {len(info['missing_keys'])} weights of the model, e.g. "
                         f"{info['missing_keys'][:3]}: not the published layout")


class LogMel(torch.nn.Module):
    """WhisperFeatureExtractor's log-mel, as graph ops: the PCM zero-padded to the extractor's 30 s, a centred
    STFT (reflect padding, periodic Hann, |X|^2) as a convolution with the DFT basis, the extractor's own Slaney
    mel filters, log10 with floor 1e-10, the last frame dropped, max(x, max - 8), (x + 4) / 4."""

    def __init__(self, fe):
        super().__init__()
        n_fft, self.hop, self.n_samples = fe.n_fft, fe.hop_length, fe.n_samples
        window = window_function(n_fft, "hann").astype(np.float64)
        k = np.arange(n_fft // 2 + 1)[:, None] * np.arange(n_fft)[None, :] * (2 * np.pi / n_fft)
        basis = np.concatenate([np.cos(k) * window, -np.sin(k) * window])[:, None, :]
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.float32))
        self.register_buffer("mel", torch.tensor(np.asarray(fe.mel_filters).T, dtype=torch.float32))
        self.bins = n_fft // 2 + 1

    def forward(self, pcm):  # [1, N] -> [1, 80, 3000]
        x = torch.nn.functional.pad(pcm, (0, self.n_samples - pcm.shape[-1]))
        x = torch.nn.functional.pad(x[:, None, :], (self.basis.shape[-1] // 2,) * 2, mode="reflect")
        spec = torch.nn.functional.conv1d(x, self.basis, stride=self.hop)
        power = spec[:, :self.bins] ** 2 + spec[:, self.bins:] ** 2
        logmel = torch.log10(torch.clamp(torch.matmul(self.mel, power[..., :-1]), min=1e-10))
        logmel = torch.maximum(logmel, logmel.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (logmel + 4.0) / 4.0


class Audio(torch.nn.Module):
    """audio.onnx: PCM [1, N] (16 kHz, N fixed = chunk + 2 context) -> features [1, N/320, layers * width],
    the whisper encoder's hidden states stacked per frame as MuseTalk stacks them (layer-major within a frame)."""

    def __init__(self, nets, n_samples, dtype):
        super().__init__()
        self.logmel = LogMel(nets.fe)
        self.encoder, self.dtype = nets.encoder, dtype
        self.frames = n_samples * facts.FEATURE_RATE // nets.fe.sampling_rate

    def forward(self, pcm):
        mel = self.logmel(pcm).to(self.dtype)
        states = self.encoder(mel, output_hidden_states=True, return_dict=True).hidden_states
        feats = torch.stack(states, dim=2)  # [1, 1500, layers, width]
        feats = feats.reshape(1, feats.shape[1], -1)[:, :self.frames]
        return feats.float()


class Prepare(torch.nn.Module):
    """prepare.onnx: the RGB crop [1,3,256,256] in [-1, 1] -> latents [1,8,32,32]: the crop with its lower half
    set to black (-1) and the crop itself through the VAE encoder, scaled by 0.18215, concatenated (masked first).
    The latent distribution's mean is used where MuseTalk draws one sample (a deterministic pack; the
    sd-vae-ft-mse posterior's spread is small)."""

    def __init__(self, nets, dtype):
        super().__init__()
        self.vae, self.dtype = nets.vae, dtype
        keep = torch.zeros(1, 1, facts.FACE_SIZE, 1)
        keep[:, :, :facts.FACE_SIZE // 2] = 1.0
        self.register_buffer("keep", keep)

    def forward(self, face):
        masked = face * self.keep - (1.0 - self.keep)
        both = torch.cat([masked, face], dim=0).to(self.dtype)
        latents = self.vae.encode(both).latent_dist.mean * facts.VAE_SCALING
        return torch.cat([latents[:1], latents[1:]], dim=1).float()


def positional_encoding(length, width, max_len=facts.PE_MAX_LEN):
    """The sinusoidal encoding of "Attention is all you need" (sin on even, cos on odd channels, base 10000), the
    first `length` rows of a `max_len` table, as MuseTalk adds to its audio prompts."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    div = np.exp(np.arange(0, width, 2, dtype=np.float64) * (-math.log(10000.0) / width))
    pe = np.zeros((length, width))
    pe[:, 0::2] = np.sin(pos * div)
    pe[:, 1::2] = np.cos(pos * div)
    assert length <= max_len
    return torch.tensor(pe, dtype=torch.float32)[None]


class Generate(torch.nn.Module):
    """generate.onnx: audio windows [B,10,layers*width] and latents [1,8,32,32] (broadcast over the batch) ->
    the face [B,3,256,256] RGB in [-1, 1]: the windows as MuseTalk's [B,50,width] prompts plus the positional
    encoding, one UNet step at t = 0, the predicted latents / 0.18215 through the VAE decoder."""

    def __init__(self, nets, dtype):
        super().__init__()
        self.unet, self.vae, self.dtype = nets.unet, nets.vae, dtype
        self.tokens = facts.FEATURE_WINDOW * nets.layers
        self.width = nets.width
        self.register_buffer("pe", positional_encoding(self.tokens, self.width))
        self.register_buffer("t", torch.tensor([facts.TIMESTEP]))

    def forward(self, audio_prompts, latents):
        b = audio_prompts.shape[0]
        prompts = (audio_prompts.reshape(b, self.tokens, self.width) + self.pe).to(self.dtype)
        lat = latents.expand(b, -1, -1, -1).to(self.dtype)
        pred = self.unet(lat, self.t, encoder_hidden_states=prompts, return_dict=False)[0]
        image = self.vae.decode(pred / facts.VAE_SCALING, return_dict=False)[0]
        return image.float()
