#!/usr/bin/env bash
# cpu_compare.sh: issue 15's comparison on this machine (lavapipe), before and after the CPU kernels and
# against PyTorch on the same CPU, interleaved in one run so that other load hits every side alike.
#
#   tools/bench/cpu_compare.sh [--before REF] [--rounds N] [--steps N] [--configs "demo t2 t4 t8"]
#                              [--no-ops] [--tests] [--demo-train] [--out DIR]
#
# It builds bin/vjepa-vk of REF (default: the parent of the commit that added vk/texel.go, where the CPU
# kernels' work began) and of
# the working tree, then:
#   1. op benchmarks of the working tree (unless --no-ops): go test ./vk -bench for the GEMM shapes of the
#      model and of these configs, and attention, each shape on the shared-memory ("kernels=gpu",
#      "path=scalar": the kernels before) and CPU kernels in turn: GFLOP/s and GFLOP per CPU-second;
#   2. for each round and configuration: vjepa-vk bench --json of REF, of the working tree, and
#      tools/bench/bench_torch_cpu.py (fp32, 2 threads, OpenBLAS-openmp for that process only);
#   3. with --tests: `go test ./...` of REF and of the working tree (wall and CPU time);
#   4. with --demo-train: `vjepa-vk train --config configs/demo.yaml` (150 steps) of each;
# and prints Markdown tables (also written to DIR/summary.md; raw output in DIR).
#
# Configurations: demo = configs/demo.yaml; tN = depth 4, width 512, 8 heads, 16×16 grid (encoder width
# 1408, random features), B=1, LoRA r 16 alpha 32, T = N frames, as in issue 15 (presets of
# bench_torch_cpu.py). Needs /usr/bin/python3 with Debian's python3-torch and libopenblas0-openmp.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

before=""
rounds=2
steps=3
configs="demo t2 t4 t8"
ops=1
tests=0
demo_train=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --before) before=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --no-ops) ops=0; shift ;;
    --tests) tests=1; shift ;;
    --demo-train) demo_train=1; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "cpu_compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$before" ]; then
  added=$(git log --format=%H --diff-filter=A -1 -- vk/texel.go)
  [ -n "$added" ] || { echo "cpu_compare.sh: no commit adds vk/texel.go; pass --before REF" >&2; exit 2; }
  before=$added^
fi
before=$(git rev-parse --verify "$before^{commit}")
out=${out:-$(mktemp -d /tmp/cpu_compare.XXXXXX)}
mkdir -p "$out"
openblas=/usr/lib/x86_64-linux-gnu/openblas-openmp
[ -e "$openblas/libblas.so.3" ] || { echo "cpu_compare.sh: $openblas missing: apt-get install libopenblas0-openmp" >&2; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "cpu_compare.sh: /usr/bin/python3 has no torch: apt-get install python3-torch" >&2; exit 1; }

echo "cpu_compare.sh: before $(git log --format='%h %s' -1 "$before")"
echo "cpu_compare.sh: after  working tree at $(git log --format='%h %s' -1 HEAD)"
echo "cpu_compare.sh: output in $out; load now: $(cut -d' ' -f1-3 /proc/loadavg)"

# Builds: the working tree's binary, and REF's from a clean export (its SPIR-V is committed).
src_before="$out/src-before"
rm -rf "$src_before" && mkdir -p "$src_before"
git archive "$before" | tar -x -C "$src_before"
(cd "$src_before" && go build -o "$out/vjepa-before" ./cmd/vjepa-vk)
go build -o "$out/vjepa-after" ./cmd/vjepa-vk

config_args() { # name -> vjepa-vk bench arguments
  local t
  case "$1" in
    demo) echo "--config $root/configs/demo.yaml" ;;
    t[0-9]*)
      t=${1#t}
      echo "--config $root/configs/demo.yaml --set model.embed_dim=1408 --set model.encoder.dim=1408" \
        "--set model.pred_dim=512 --set model.depth=4 --set model.heads=8 --set model.img=256" \
        "--set data.frames=$t --set data.batch_size=1 --set lora.r=16 --set lora.alpha=32" \
        "--set training.auto_steps=$(( t - 1 < 2 ? t - 1 : 2 ))" ;;
    *) echo "cpu_compare.sh: unknown configuration $1" >&2; exit 2 ;;
  esac
}

if [ $ops = 1 ]; then
  echo "== op benchmarks (kernels=gpu / path=scalar: the kernels before; kernels=cpu / path=cpu: after)"
  go test ./vk -run '^$' -benchtime 3x \
    -bench 'Gemm/m=(1032|2064,n=3072,k=1024,layout=NT,dtype=f32_f32|512,n=512,k=512,layout=NN,dtype=f32_f32|16,n=512)' \
    2>&1 | tee "$out/ops_gemm.txt" | grep -E '^Benchmark'
  go test ./vk -run '^$' -benchtime 2x \
    -bench 'Attention(Forward|Backward)/path=(scalar|cpu),B=1,N=(516|2064)' \
    2>&1 | tee "$out/ops_attention.txt" | grep -E '^Benchmark'
fi

echo "== training steps: $rounds round(s) of [before, after, PyTorch] per configuration"
: >"$out/steps.jsonl"
for r in $(seq "$rounds"); do
  for c in $configs; do
    # shellcheck disable=SC2046
    for side in before after; do
      if line=$("$out/vjepa-$side" bench $(config_args "$c") --steps "$steps" --warmup 1 --timings=false --json 2>"$out/err.txt"); then
        echo "{\"round\":$r,\"config\":\"$c\",\"side\":\"$side\",\"result\":$line}" >>"$out/steps.jsonl"
      else
        echo "cpu_compare.sh: $side $c failed: $(tail -1 "$out/err.txt")" >&2
      fi
    done
    if line=$(LD_LIBRARY_PATH=$openblas /usr/bin/python3 tools/bench/bench_torch_cpu.py --preset "$c" --steps "$steps" --warmup 1 2>"$out/err.txt" | tail -1); then
      echo "{\"round\":$r,\"config\":\"$c\",\"side\":\"torch\",\"result\":$line}" >>"$out/steps.jsonl"
    else
      echo "cpu_compare.sh: torch $c failed: $(tail -1 "$out/err.txt")" >&2
    fi
    echo "  round $r $c done (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done

time_cmd() { # label dir cmd... -> appends "label wall_s cpu_s status" to $out/times.txt
  local label=$1 dir=$2; shift 2
  local t0 status=0
  t0=$(date +%s.%N)
  (cd "$dir" && /usr/bin/time -f "%U %S" -o "$out/time.$label" "$@" >"$out/log.$label" 2>&1) || status=$?
  local wall cpu
  wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  cpu=$(tail -1 "$out/time.$label" | awk '{print $1 + $2}')
  echo "$label $wall $cpu $status" >>"$out/times.txt"
  echo "  $label: wall ${wall}s, cpu ${cpu}s, exit $status"
}
: >"$out/times.txt"
if [ $tests = 1 ]; then
  echo "== go test ./... (before, then after)"
  time_cmd tests-before "$src_before" go test -count=1 ./...
  time_cmd tests-after "$root" go test -count=1 ./...
fi
if [ $demo_train = 1 ]; then
  echo "== vjepa-vk train --config configs/demo.yaml (before, after)"
  for side in before after; do
    time_cmd "demo-train-$side" "$root" "$out/vjepa-$side" train --config configs/demo.yaml \
      --set logging.dir="$out/run-$side" --set checkpoint.dir="$out/ckpt-$side" --set logging.progress=off
  done
fi

/usr/bin/python3 - "$out" <<'PY' | tee "$out/summary.md"
import json, os, statistics, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "steps.jsonl")) if l.strip()]
def med(config, side):
    v = [r["result"]["step_s_median"] for r in rows if r["config"] == config and r["side"] == side]
    return statistics.median(v) if v else None
kernels = next((r["result"].get("kernels") for r in rows if r["side"] == "after"), "?")
if rows:
    print("| config | before (s/step) | after (s/step) | PyTorch CPU (s/step) | after vs before | after / PyTorch |")
    print("|---|---|---|---|---|---|")
for c in dict.fromkeys(r["config"] for r in rows):
    b, a, t = med(c, "before"), med(c, "after"), med(c, "torch")
    f = lambda x: "–" if x is None else f"{x:.3f}"
    sp = f"{b / a:.2f}× faster" if a and b else "–"
    ra = f"{a / t:.2f}×" if a and t else "–"
    print(f"| {c} | {f(b)} | {f(a)} | {f(t)} | {sp} | {ra} |")
if rows:
    print(f"\n(medians over rounds of each side's median step; after: kernels={kernels})")
times = os.path.join(out, "times.txt")
if os.path.exists(times) and os.path.getsize(times):
    print("\n| run | wall (s) | CPU (s) | exit |\n|---|---|---|---|")
    for l in open(times):
        label, wall, cpu, status = l.split()
        print(f"| {label} | {float(wall):.1f} | {float(cpu):.1f} | {status} |")
PY
echo "cpu_compare.sh: load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
