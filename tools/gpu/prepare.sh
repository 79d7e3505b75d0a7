#!/usr/bin/env bash
# prepare.sh: build what tools/gpu/check.sh runs on a GPU machine that has neither Go nor the Vulkan
# loader, into .gpu/ (ignored by git): the CLI and the vk and model test binaries (stripped; the CLI
# gzipped to fit the device tool's 64 MiB tree), the loader and validation-layer debs, and the PyTorch
# peer from ../shared/baseline. Run it here after every code change, then on the device tool:
#
#   run(command: "bash tools/gpu/check.sh", carry: [".gpu"], timeout_s: 560)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.gpu
mkdir -p "$out/debs"
go build -ldflags='-s -w' -o "$out/vjepa-vk" ./cmd/vjepa-vk
gzip -9f "$out/vjepa-vk"
go test -c -ldflags='-s -w' -o "$out/vk.test" ./vk
go test -c -ldflags='-s -w' -o "$out/model.test" ./model
if ! ls "$out"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
	# amd64 packages whatever this machine is, with lists of their own (a fresh machine's are stale).
	o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/vjepa-vk-apt-amd64)
	mkdir -p /tmp/vjepa-vk-apt-amd64/partial
	apt-get "${o[@]}" update
	# The NVIDIA ICD (libGLX_nvidia) needs the glvnd libraries beside the loader.
	(cd "$out/debs" && apt-get "${o[@]}" download libvulkan1 vulkan-validationlayers \
		libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
for f in bench_torch.py bench_plan_torch.py torch_ac.py; do
	if [ -e "../shared/baseline/$f" ]; then cp "../shared/baseline/$f" "$out/"; fi
done
du -sh "$out"
