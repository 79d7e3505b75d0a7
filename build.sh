#!/usr/bin/env bash
# build.sh: install missing system packages (Debian/Ubuntu), compile every shader variant to SPIR-V,
# validate it with spirv-val, write shaders/spv/*.spv (committed, embedded by shaders/embed.go), and build
# bin/vjepa-vk.
#
#   ./build.sh            install what is missing, compile shaders, build bin/vjepa-vk
#   ./build.sh --check    fail if a committed .spv differs from what the sources compile to
#   ./build.sh --shaders  compile shaders only
#   ./build.sh --no-install  never call apt-get
set -euo pipefail
cd "$(dirname "$0")"

# The one table of shader variants: output name, source, glslc defines. Every shaders/*.comp not named
# here as a source is compiled once, plainly, to spv/<stem>.spv.
VARIANTS=(
  "attention attention.comp"
  "attention.coopmat attention.comp -DCOOPMAT"
  "attention.coopmat.emulated attention.comp -DCOOPMAT -DCOOPMAT_EMULATE"
  "attention.cpu attention.comp -DCPU"
  "attention_backward_dq attention_backward_dq.comp"
  "attention_backward_dq.cpu attention_backward_dq.comp -DCPU"
  "attention_backward_dq.coopmat attention_backward_dq.comp -DCOOPMAT"
  "attention_backward_dq.coopmat.emulated attention_backward_dq.comp -DCOOPMAT -DCOOPMAT_EMULATE"
  "attention_backward_dkv attention_backward_dkv.comp"
  "attention_backward_dkv.cpu attention_backward_dkv.comp -DCPU"
  "attention_backward_dkv.coopmat attention_backward_dkv.comp -DCOOPMAT"
  "attention_backward_dkv.coopmat.emulated attention_backward_dkv.comp -DCOOPMAT -DCOOPMAT_EMULATE"
  "gemm gemm.comp"
  "gemm.f32_f16 gemm.comp -DB_F16"
  "gemm.f32_bf16 gemm.comp -DB_BF16"
  "gemm.f16_f32 gemm.comp -DA_F16"
  "gemm.f16_f16 gemm.comp -DA_F16 -DB_F16"
  "gemm.f16_bf16 gemm.comp -DA_F16 -DB_BF16"
  "gemm.bf16_f32 gemm.comp -DA_BF16"
  "gemm.bf16_f16 gemm.comp -DA_BF16 -DB_F16"
  "gemm.bf16_bf16 gemm.comp -DA_BF16 -DB_BF16"
  "gemm.coopmat gemm.comp -DCOOPMAT -DA_F16 -DB_F16"
  "gemm.coopmat.f32_f16 gemm.comp -DCOOPMAT -DB_F16"
  "gemm.lowrank gemm.comp -DLOWRANK"
  "gemm.lowrank.f32_f16 gemm.comp -DLOWRANK -DB_F16"
  "gemm.lowrank.f32_bf16 gemm.comp -DLOWRANK -DB_BF16"
  "gemm.coopmat.lowrank.f32_f16 gemm.comp -DCOOPMAT -DLOWRANK -DB_F16"
  "gemm.lowrank_epilogue.f32_f16 gemm.comp -DLOWRANK -DLOWRANK_EPILOGUE -DB_F16"
  "gemm.lowrank.elementwise gemm.comp -DLOWRANK -DELEMENTWISE"
  "gemm.lowrank.elementwise.f32_f16 gemm.comp -DLOWRANK -DELEMENTWISE -DB_F16"
  "gemm.lowrank.elementwise.f32_bf16 gemm.comp -DLOWRANK -DELEMENTWISE -DB_BF16"
  "gemm.coopmat.lowrank.elementwise.f32_f16 gemm.comp -DCOOPMAT -DLOWRANK -DELEMENTWISE -DB_F16"
  "gemm.lowrank_epilogue.elementwise.f32_f16 gemm.comp -DLOWRANK -DLOWRANK_EPILOGUE -DELEMENTWISE -DB_F16"
  "gemm.masked gemm.comp -DMASKED"
  "gemm.cpu gemm.comp -DCPU"
  "gemm.cpu.lowrank gemm.comp -DCPU -DLOWRANK"
  "gemm.cpu.lowrank.elementwise gemm.comp -DCPU -DLOWRANK -DELEMENTWISE"
  "gemm.cpu.masked gemm.comp -DCPU -DMASKED"
  "layernorm layernorm.comp"
  "layernorm.noaffine layernorm.comp -DNO_AFFINE"
  "layernorm_backward layernorm_backward.comp"
  "layernorm_backward.accumulate layernorm_backward.comp -DACCUMULATE"
  "layernorm_backward.noaffine layernorm_backward.comp -DNO_AFFINE"
  "layernorm_backward.noaffine_accumulate layernorm_backward.comp -DNO_AFFINE -DACCUMULATE"
  "layernorm.cpu layernorm.comp -DCPU"
  "layernorm.noaffine.cpu layernorm.comp -DNO_AFFINE -DCPU"
  "layernorm_backward.cpu layernorm_backward.comp -DCPU"
  "layernorm_backward.accumulate.cpu layernorm_backward.comp -DACCUMULATE -DCPU"
  "layernorm_backward.noaffine.cpu layernorm_backward.comp -DNO_AFFINE -DCPU"
  "layernorm_backward.noaffine_accumulate.cpu layernorm_backward.comp -DNO_AFFINE -DACCUMULATE -DCPU"
  "l1_loss_backward l1_loss_backward.comp"
  "l1_loss_backward.accumulate l1_loss_backward.comp -DACCUMULATE"
  "reduce.sum reduce.comp -DSUM"
  "reduce.sum_squares reduce.comp -DSUM_SQUARES"
  "reduce.max_abs reduce.comp -DMAX_ABS"
  "reduce_finish.sum reduce_finish.comp -DSUM"
  "reduce_finish.sum_squares reduce_finish.comp -DSUM_SQUARES"
  "reduce_finish.max_abs reduce_finish.comp -DMAX_ABS"
  "convert.f32_f32 convert.comp -DSRC_F32 -DDST_F32"
  "convert.f32_f16 convert.comp -DSRC_F32 -DDST_F16"
  "convert.f32_bf16 convert.comp -DSRC_F32 -DDST_BF16"
  "convert.f16_f32 convert.comp -DSRC_F16 -DDST_F32"
  "convert.f16_f16 convert.comp -DSRC_F16 -DDST_F16"
  "convert.f16_bf16 convert.comp -DSRC_F16 -DDST_BF16"
  "convert.bf16_f32 convert.comp -DSRC_BF16 -DDST_F32"
  "convert.bf16_f16 convert.comp -DSRC_BF16 -DDST_F16"
  "convert.bf16_bf16 convert.comp -DSRC_BF16 -DDST_BF16"
  "copy_blocks copy_blocks.comp"
  "copy_blocks.accumulate copy_blocks.comp -DACCUMULATE"
  "dropout dropout.comp"
  "dropout.accumulate dropout.comp -DACCUMULATE"
)

mode=build
install=1
for a in "$@"; do
  case "$a" in
    --check) mode=check ;;
    --shaders) mode=shaders ;;
    --no-install) install=0 ;;
    *) echo "build.sh: unknown flag $a" >&2; exit 2 ;;
  esac
done

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have glslc || need_pkgs+=(glslc)
have spirv-val || need_pkgs+=(spirv-tools)
[ -e /usr/include/vulkan/vulkan.h ] || need_pkgs+=(libvulkan-dev)
ldconfig -p 2>/dev/null | grep "libvulkan.so.1" >/dev/null || need_pkgs+=(libvulkan1)
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need_pkgs+=(mesa-vulkan-drivers)
ls /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json >/dev/null 2>&1 || need_pkgs+=(vulkan-validationlayers)
have ffmpeg || need_pkgs+=(ffmpeg) # LeRobot videos (data/lerobot): decode H.264/AV1, encode the demo
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ $install = 1 ] && have apt-get; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "build.sh: installing ${need_pkgs[*]}"
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "build.sh: missing packages: ${need_pkgs[*]}" >&2
    [ $mode = build ] || exit 1
  fi
fi

GLSLC_FLAGS=(--target-env=vulkan1.2 -O -Werror -Ishaders)

compile() { # out src defines...
  local out=$1 src=$2; shift 2
  glslc "${GLSLC_FLAGS[@]}" "$@" -o "$out" "$src"
  spirv-val --target-env vulkan1.2 "$out"
}

build_all() { # dir
  local dir=$1 listed=" "
  mkdir -p "$dir"
  for row in "${VARIANTS[@]}"; do
    read -r name src defs <<<"$row"
    # shellcheck disable=SC2086
    compile "$dir/$name.spv" "shaders/$src" $defs
    listed+="$src "
  done
  for src in shaders/*.comp; do
    local stem; stem=$(basename "$src" .comp)
    [[ "$listed" == *" $stem.comp "* ]] && continue
    compile "$dir/$stem.spv" "$src"
  done
}

case $mode in
  check)
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    build_all "$tmp"
    status=0
    for f in "$tmp"/*.spv; do
      n=$(basename "$f")
      if ! cmp -s "$f" "shaders/spv/$n"; then echo "build.sh --check: shaders/spv/$n is stale or missing" >&2; status=1; fi
    done
    for f in shaders/spv/*.spv; do
      [ -e "$tmp/$(basename "$f")" ] || { echo "build.sh --check: shaders/spv/$(basename "$f") has no source" >&2; status=1; }
    done
    [ $status = 0 ] && echo "build.sh --check: $(ls "$tmp" | wc -l) SPIR-V modules up to date"
    exit $status ;;
  shaders)
    rm -f shaders/spv/*.spv; build_all shaders/spv ;;
  build)
    rm -f shaders/spv/*.spv; build_all shaders/spv
    mkdir -p bin
    # The commit for --version, where the go command cannot stamp it (git worktrees, -buildvcs=false).
    ldflags=
    if commit=$(git rev-parse HEAD 2>/dev/null); then
      git diff --quiet HEAD 2>/dev/null || commit+="+dirty"
      ldflags="-X main.buildCommit=$commit"
    fi
    go build -ldflags "$ldflags" -o bin/vjepa-vk ./cmd/vjepa-vk
    echo "build.sh: built bin/vjepa-vk with $(ls shaders/spv | wc -l) SPIR-V modules" ;;
esac
