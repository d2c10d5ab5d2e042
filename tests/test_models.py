"""BTC and ChordNet: reference state-dict layout, parameter counts, any-length forward, registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mirkd.errors import ConfigError, MirkdError
from mirkd.models import (
    BTC,
    BTCConfig,
    ChordNet,
    ChordNetConfig,
    build_model,
    default_hparams,
)
from mirkd.models.btc import LayerNorm
from mirkd.models.common import (
    KEEP_LEVELS,
    attention_bias,
    cpu_keep_mask,
    dropout,
    masked_attention,
)

# The 221 state-dict keys of the public BTC checkpoint (from ../shared/docs), kept with the tests
KEYS_FILE = Path(__file__).parent / "data" / "btc_state_dict_keys.txt"


def _reference_keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in KEYS_FILE.read_text().splitlines():
        name, shape = line.split(" ", 1)
        rows.append((name, tuple(int(d) for d in re.findall(r"\d+", shape))))
    return rows


def test_btc_state_dict_matches_public_checkpoint_layout():
    state = BTC().state_dict()
    reference = _reference_keys()
    assert len(reference) == 221
    assert [(k, tuple(v.shape)) for k, v in state.items()] == reference


def test_btc_parameter_counts():
    assert sum(p.numel() for p in BTC().parameters()) == 3_036_842
    assert sum(p.numel() for p in BTC(BTCConfig(num_chords=25)).parameters()) == 3_018_137


def test_btc_masks_and_timing_signal_are_not_saved():
    model = BTC(BTCConfig(num_layers=1))
    buffers = {name for name, _ in model.named_buffers()}
    assert any(name.endswith("timing_signal") for name in buffers)
    assert any(name.endswith(".bias") for name in buffers)
    assert not buffers & set(model.state_dict())


def test_layer_norm_uses_unbiased_std_plus_eps():
    norm = LayerNorm(5)
    with torch.no_grad():
        norm.gamma.copy_(torch.arange(1.0, 6.0))
        norm.beta.fill_(0.5)
    x = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0]])
    std = x.std(unbiased=True)
    expected = norm.gamma * (x - x.mean()) / (std + 1e-6) + 0.5
    torch.testing.assert_close(norm(x), expected)
    assert not torch.allclose(norm(x), torch.nn.functional.layer_norm(x, (5,)) * norm.gamma + 0.5)


def test_layer_norm_gradients_are_those_of_the_std_formula():
    torch.manual_seed(0)
    norm = LayerNorm(128)
    x = torch.randn(4, 108, 128, requires_grad=True)
    weights = torch.randn(4, 108, 128)
    (grad,) = torch.autograd.grad((norm(x) * weights).sum(), x)
    mean, std = x.mean(-1, keepdim=True), x.std(-1, keepdim=True)
    (expected,) = torch.autograd.grad((((x - mean) / (std + 1e-6)) * weights).sum(), x)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5)
    constant = torch.ones(2, 128, requires_grad=True)  # zero variance: output beta, finite grad
    norm(constant).sum().backward()
    assert torch.isfinite(constant.grad).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 input, as after a bf16 layer
        low = norm(x.detach().bfloat16())
    expected = norm(x.detach().bfloat16().float()).detach()
    torch.testing.assert_close(low.float(), expected, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    "arch, hparams",
    [
        (
            "btc",
            {
                "num_layers": 1,
                "hidden_size": 32,
                "total_key_depth": 32,
                "total_value_depth": 32,
                "filter_size": 32,
            },
        ),
        ("chordnet", {"f_layer": 1, "t_layer": 1, "d_layer": 1}),
    ],
)
def test_forward_any_length_is_windowed(arch, hparams):
    torch.manual_seed(0)
    model = build_model(arch, hparams).eval()
    x = torch.randn(2, 250, 144)
    with torch.no_grad():
        y = model(x)
        first = model(x[:, :108])
        short = model(x[:, :30])
        padded = model(torch.cat([x[:, :30], torch.zeros(2, 78, 144)], dim=1))
    assert y.shape == (2, 250, 170)
    torch.testing.assert_close(y[:, :108], first)  # windows are independent
    torch.testing.assert_close(short, padded[:, :30])  # short input = zero-padded window


@pytest.mark.parametrize("arch", ["btc", "chordnet"])
def test_a_window_is_predicted_alike_in_any_batch(arch):
    """No batch statistics: the trainer passes both consistency views in one batch."""
    torch.manual_seed(0)
    model = build_model(arch, default_hparams(arch)).eval()
    a, b = torch.randn(3, 108, 144), torch.randn(2, 108, 144)
    with torch.no_grad():
        both = model(torch.cat([a, b]))
        torch.testing.assert_close(both[:3], model(a), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(both[3:], model(b), rtol=1e-4, atol=1e-4)


def test_dropout_follows_config():
    model = BTC(
        BTCConfig(
            num_layers=1,
            input_dropout=0.1,
            layer_dropout=0.2,
            attention_dropout=0.3,
            relu_dropout=0.4,
        )
    )
    assert model.self_attn_layers.input_dropout.p == 0.1
    block = model.self_attn_layers.self_attn_layers[0].attn_block
    assert block.dropout.p == 0.2
    assert block.multi_head_attention.attention_dropout == 0.3
    assert block.positionwise_convolution.dropout.p == 0.4
    x = torch.randn(1, 108, 144)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_cpu_dropout_keeps_the_rate_scales_exactly_and_passes_gradients_through_its_mask():
    x = torch.full((400_000,), 2.0, requires_grad=True)
    torch.manual_seed(0)
    y = dropout(x, 0.2, True)
    kept = y != 0
    keep = round(0.8 * KEEP_LEVELS)
    dropped = 1.0 - keep / KEEP_LEVELS  # p rounded to the mask's resolution
    # the dropped fraction is that rate within 5 standard deviations of a Bernoulli mean
    assert abs((~kept).float().mean().item() - dropped) < 5 * (0.16 / x.numel()) ** 0.5
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 * KEEP_LEVELS / keep))
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, y.detach() / 2.0)  # dL/dx = mask * scale
    assert dropout(x, 0.2, False) is x and dropout(x, 0.0, True) is x


def test_cpu_dropout_follows_the_torch_seed_and_its_bits_are_uniform():
    torch.manual_seed(5)
    a = cpu_keep_mask(torch.Size([64, 1000]), KEEP_LEVELS // 2)
    torch.manual_seed(5)
    b = cpu_keep_mask(torch.Size([64, 1000]), KEEP_LEVELS // 2)
    assert torch.equal(a, b)
    assert not torch.equal(a, cpu_keep_mask(torch.Size([64, 1000]), KEEP_LEVELS // 2))
    # each of the eight 8-bit lanes of a 64-bit draw keeps half at keep = 1/2
    lanes = a.reshape(-1, 8).float().mean(0)
    assert torch.all((lanes - 0.5).abs() < 5 * (0.25 / (a.numel() / 8)) ** 0.5)
    # the smallest and largest rates keep their share (5 sd is a sixth of a level there)
    for keep in (1, KEEP_LEVELS - 1):
        rate = keep / KEEP_LEVELS
        share = cpu_keep_mask(torch.Size([64, 4000]), keep).float().mean().item()
        assert abs(share - rate) < 5 * (rate * (1 - rate) / 256_000) ** 0.5
    for keep in (0, KEEP_LEVELS):  # all-drop / keep-all are F.dropout's, never a wrapped mask
        with pytest.raises(ValueError, match="keep must be in 1..255"):
            cpu_keep_mask(torch.Size([8]), keep)


def test_cpu_dropout_keeps_the_input_type():
    x = torch.randn(64, 1000, dtype=torch.bfloat16)
    torch.manual_seed(3)
    y = dropout(x, 0.25, True)
    torch.manual_seed(3)
    keep = round(0.75 * KEEP_LEVELS)
    mask = cpu_keep_mask(x.shape, keep)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, x * torch.where(mask, KEEP_LEVELS / keep, 0.0).to(torch.bfloat16))


def test_masked_attention_is_softmax_attention_with_the_same_dropout_masks():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 8) for _ in range(3))
    visible = torch.tril(torch.ones(10, 10, dtype=torch.bool))
    bias = attention_bias(visible)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5 + bias, dim=-1)
    torch.testing.assert_close(masked_attention(q, k, v, bias, 0.0), weights @ v)
    torch.manual_seed(1)
    dropped = masked_attention(q, k, v, bias, 0.25)
    torch.manual_seed(1)
    keep = round(0.75 * KEEP_LEVELS)
    mask = cpu_keep_mask(torch.Size([6, 10, 10]), keep).view(2, 3, 10, 10)
    torch.testing.assert_close(dropped, (weights * mask * (KEEP_LEVELS / keep)) @ v)
    # frame i sees frames <= i: later values change nothing before them
    later = v.clone()
    later[:, :, 6:] += 1.0
    torch.manual_seed(1)
    torch.testing.assert_close(
        masked_attention(q, k, later, bias, 0.25)[:, :, :6], dropped[:, :, :6]
    )


def test_cpu_attention_under_bf16_autocast_takes_its_softmax_in_float32(monkeypatch):
    """CPU autocast would keep bfloat16 scores' softmax in bfloat16; the hand-written path
    (training with attention dropout) computes it in float32 as SDPA does."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 8) for _ in range(3))
    bias = attention_bias(torch.tril(torch.ones(10, 10, dtype=torch.bool)))
    seen = []
    softmax = torch.softmax
    monkeypatch.setattr(
        torch, "softmax", lambda x, *a, **kw: seen.append(softmax(x, *a, **kw)) or seen[-1]
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = masked_attention(q, k, v, bias, 0.25)
    assert [w.dtype for w in seen] == [torch.float32]
    assert out.dtype == torch.bfloat16


def test_chordnet_default_parameter_count_and_yaml_variant():
    assert sum(p.numel() for p in ChordNet().parameters()) == 2_105_581
    yaml_config = ChordNetConfig(
        f_layer=5, f_head=6, t_layer=5, t_head=8, d_layer=5, d_head=8, dropout=0.2
    )
    model = ChordNet(yaml_config)
    assert sum(p.numel() for p in model.parameters()) == 3_031_249
    assert len(model.state_dict()) == 249
    assert model.transformer.encoder_f[0].attn_layer[0].num_heads == 6


def test_chordnet_refuses_head_count_not_dividing_token_width():
    with pytest.raises(ConfigError, match="f_head=8.*12"):
        ChordNetConfig(f_head=8)
    with pytest.raises(ConfigError, match="t_head=7"):
        ChordNetConfig(t_head=7)


def test_registry_builds_and_validates():
    assert isinstance(build_model("btc", {"num_layers": 1}), BTC)
    assert isinstance(build_model("chordnet", {}), ChordNet)
    assert default_hparams("chordnet")["f_head"] == 2
    assert default_hparams("btc")["num_layers"] == 8
    with pytest.raises(MirkdError, match="num_layer\\b"):
        build_model("btc", {"num_layer": 2})
    with pytest.raises(MirkdError, match="unknown model architecture 'rnn'"):
        build_model("rnn", {})
    with pytest.raises(ConfigError, match="num_layers"):
        build_model("btc", {"num_layers": True})
    with pytest.raises(ConfigError, match="dropout"):
        build_model("chordnet", {"dropout": 1.5})
    with pytest.raises(ConfigError, match="num_heads"):
        build_model("btc", {"num_heads": 3})


def test_every_architecture_has_a_model_class_and_a_config() -> None:
    from mirkd.model_configs import ARCH_CONFIGS
    from mirkd.models.registry import ARCHITECTURES

    assert set(ARCHITECTURES) == set(ARCH_CONFIGS)
    for arch, model_class in ARCHITECTURES.items():
        assert isinstance(build_model(arch, {}), model_class)
