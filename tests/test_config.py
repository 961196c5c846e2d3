import pytest

from swiftvr_jax.config import ConfigError, PRESETS, config_from_dict, get_config


def test_presets_and_roundtrip():
    assert set(PRESETS) == {"tiny", "small", "swiftvr-5b"}
    for name in PRESETS:
        cfg = get_config(name)
        assert config_from_dict(cfg.to_dict()) == cfg
    small = get_config("small").model
    assert 256 <= small.dim <= 384 and 8 <= small.num_layers <= 12 and small.head_dim == 64
    big = get_config("swiftvr-5b").model
    assert (big.dim, big.num_layers, big.num_heads, big.ffn_dim, big.in_channels) == (3072, 30, 24, 14336, 48)


def test_overrides_parse_by_type():
    cfg = get_config("tiny", ["model.window=8,8", "model.attention=full", "train.lr=3e-4",
                              "model.remat=true", "reae.spatial_strides=1,2,2", "stream.clip_len=16"])
    assert cfg.model.window == (8, 8) and cfg.model.attention == "full" and cfg.train.lr == 3e-4
    assert cfg.model.remat is True and cfg.reae.space_factor == 8 and cfg.stream.clip_len == 16


@pytest.mark.parametrize("bad, words", [
    ("model.nope=1", "window"), ("x.y=1", "model|reae"), ("model.window=a,b", "cannot read"),
    ("model.attention=foo", "full, swin, mfswa"), ("stream.clip_len=6", "multiple of 4"),
    ("model.dim", "section.field=value"), ("model.remat=maybe", "cannot read"),
])
def test_bad_overrides_are_one_line_errors(bad, words):
    with pytest.raises(ConfigError) as err:
        get_config("tiny", [bad])
    assert words in str(err.value) and "\n" not in str(err.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="tiny, small, swiftvr-5b"):
        get_config("huge")


def test_degradation_names_agree_with_degrade_module():
    from swiftvr_jax.config import DEGRADATIONS
    from swiftvr_jax.degrade import DEGRADATION_PRESETS

    assert tuple(DEGRADATIONS) == tuple(DEGRADATION_PRESETS)


@pytest.mark.parametrize("overrides,match", [
    (["reae.cond_blocks=1"], "needs reae.residual=true"),
    (["reae.residual=true", "reae.cond_blocks=-1"], "must be >= 0"),
    (["reae.residual=true", "reae.residual_resize=area"], "bilinear, cubic, lanczos3"),
])
def test_residual_reae_options_are_checked(overrides, match):
    with pytest.raises(ConfigError, match=match):
        get_config("tiny", overrides)
    assert get_config("tiny", ["reae.residual=true", "reae.cond_blocks=2", "reae.residual_resize=cubic"]).reae.cond_blocks == 2
