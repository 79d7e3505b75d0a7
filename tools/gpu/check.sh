#!/usr/bin/env bash
# check.sh: the GPU check, run on the device machine by the device tool after tools/gpu/prepare.sh (see
# there). In about 8 minutes it writes to $OUT:
#   devices.txt    the device and driver
#   coopmat.txt    the tensor-core kernels' tests on real hardware (VJEPA_VK_COOPMAT=1, validation on)
#   verify.jsonl   every golden fixture in fp32
#   steps.jsonl    one training step of ours (T=16 B=2 and T=8 B=8, checkpointing, both LoRA paths at
#                  T=16 B=2) next to the PyTorch + PEFT peer at the same settings, in one run
#   plan.jsonl     planning one action (bench --plan, bf16 weights, random init) at the paper setting
#                  (800/10/10, horizon 1) and the wrapper setting (400/10/10, horizon 2, with and without
#                  the K/V cache) next to shared/baseline/bench_plan_torch.py at the same settings
#   ops.txt        GEMM, attention and LoRA-path op benchmarks
# Sections are cut by timeouts rather than stopping the script, so one hang costs only its own section.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/vjepa-vk-gpu}
mkdir -p "$OUT"
for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -e "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
export VK_LAYER_PATH=/usr/share/vulkan/explicit_layer.d
gunzip -kf .gpu/vjepa-vk.gz
chmod +x .gpu/vjepa-vk .gpu/vk.test .gpu/model.test
B=$PWD/.gpu/vjepa-vk
log() { echo "=== $* ($(date +%T))"; }

log devices
{ timeout 60 "$B" devices; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true; } >"$OUT/devices.txt" 2>&1
head -40 "$OUT/devices.txt"

log coopmat-tests
(cd vk && VJEPA_VK_COOPMAT=1 timeout 240 ../.gpu/vk.test -test.short -test.v \
	-test.run 'CoopMat|LowRank|Mask|Elementwise|Attention') >"$OUT/coopmat.txt" 2>&1
grep -E '^(--- |ok|FAIL|PASS|panic)|    --- (FAIL|SKIP)|rror' "$OUT/coopmat.txt" | head -60

log verify
for f in testdata/fixtures/*/; do timeout 60 "$B" verify --fixture "$f"; done >"$OUT/verify.jsonl" 2>&1
cut -c1-200 "$OUT/verify.jsonl"

log steps
ours() { timeout 120 "$B" bench --config configs/rtx-24gb.yaml --set model.checkpoint= --steps 5 --warmup 2 --json "$@"; }
{
	VJEPA_VK_COOPMAT=1 ours --set lora.path=fused
	VJEPA_VK_COOPMAT=1 ours --set lora.path=thin
	VJEPA_VK_COOPMAT=1 ours --set data.frames=8 --set data.batch_size=8
	ours --timings=false
	if [ -e .gpu/bench_torch.py ]; then
		(cd .gpu && timeout 150 python3 bench_torch.py --T 16 --B 2 --ckpt 1 && timeout 150 python3 bench_torch.py --T 8 --B 8 --ckpt 1)
	fi
} >"$OUT/steps.jsonl" 2>&1
grep -v Warning "$OUT/steps.jsonl" | cut -c1-600

log plan
plan() { timeout 150 "$B" bench --plan --config configs/droid-vitg.yaml --set model.checkpoint= --precision bf16 --steps 3 --warmup 1 --json "$@"; }
{
	plan --preset paper
	plan --preset wrapper
	plan --preset wrapper --no-kv-cache --timings=false
	VJEPA_VK_COOPMAT=1 plan --preset paper --timings=false
	if [ -e .gpu/bench_plan_torch.py ]; then
		(cd .gpu && timeout 150 python3 bench_plan_torch.py --repeats 2 &&
			timeout 150 python3 bench_plan_torch.py --samples 400 --iters 10 --horizon 2 --maxnorm 0.05 --repeats 2)
	fi
} >"$OUT/plan.jsonl" 2>&1
grep -v Warning "$OUT/plan.jsonl" | cut -c1-600

log ops
{
	(cd vk && VJEPA_VK_COOPMAT=1 timeout 100 ../.gpu/vk.test -test.run '^$' -test.benchtime 10x \
		-test.bench 'Gemm/m=2064|Attention(Forward|Backward)/path=(scalar|coopmat),B=(1|2),N=2064')
	(cd model && VJEPA_VK_COOPMAT=1 timeout 100 ../.gpu/model.test -test.run '^$' -test.bench LoRALinear -test.benchtime 5x)
} 2>&1 | grep -E 'Benchmark|FAIL|rror' >"$OUT/ops.txt"
cat "$OUT/ops.txt"
log done
