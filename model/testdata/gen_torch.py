# Regenerates the small torch.save archives in this folder (Debian python3-torch 1.13, CPU only):
#   /usr/bin/python3 model/testdata/gen_torch.py
# The Go reader never needs torch; these files only pin the format real torch writes. Each file stores
# the tricky tensor next to a plain contiguous float32 copy made by torch, so the Go test compares the two.
import collections
import os

import torch

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)

# Conversion edge cases: ties, subnormals, the f16 overflow boundary, signed zero, inf, nan.
edge = [0.0, -0.0, 1.0, -2.5, 1e-8, 6e-8, 5.96e-8, 2.98e-8, 1e-5, 6.1e-5, 65504.0, 65519.0, 65520.0, 70000.0,
        -1e6, float("inf"), float("-inf"), float("nan"), 1.0009765625, 1.00048828125, 1.00146484375,
        3.4e38, 1.0 + 2**-8, 1.0 + 3 * 2**-9, 2**-14, 2**-24, 2**-25, 3 * 2**-26]
x32 = torch.cat([torch.tensor(edge, dtype=torch.float32), torch.randn(100) * 10 ** torch.randint(-6, 5, (100,)).float()])

dtypes = {
    "x32": x32,
    "x16": x32.half(),
    "xbf": x32.bfloat16(),
    "x64": x32.double(),
    "i64": torch.arange(-3, 5, dtype=torch.int64),
    "i32": torch.arange(-3, 5, dtype=torch.int32),
    "i16": torch.arange(-3, 5, dtype=torch.int16),
    "i8": torch.arange(-3, 5, dtype=torch.int8),
    "u8": torch.arange(0, 8, dtype=torch.uint8),
    "bool": torch.tensor([True, False, True]),
    "scalar": torch.tensor(3.5),
    "empty": torch.zeros(0, 3),
}
torch.save(dtypes, os.path.join(here, "torch_dtypes.pt"))

# Views: shared storages, offsets, non-contiguous strides, stride 0; plus 300 row views of one storage so
# the memo passes 256 entries (LONG_BINPUT / LONG_BINGET), and a real nn.Module state_dict (OrderedDict with
# _metadata, pickled with BUILD).
base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
views = {
    "base": base,
    "rows": base[2:5],
    "cols": base[:, 3:7],
    "t": base.t(),
    "step": base[::2, ::3],
    "expand": torch.arange(4.0).reshape(4, 1).expand(4, 5),
    "elem": base[4, 7],
}
out = {"views": views, "want": {k: v.contiguous().clone() for k, v in views.items()}}
many = torch.arange(300 * 2, dtype=torch.float32).reshape(300, 2)
out["many"] = collections.OrderedDict((f"module.backbone.blocks.{i}.w", many[i]) for i in range(300))
lin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
out["module"] = lin.state_dict()
out["module_bf16"] = lin.bfloat16().state_dict()
out["epoch"], out["loss"], out["name"], out["flag"], out["nothing"] = 7, 0.25, "run-1", True, None
torch.save(out, os.path.join(here, "torch_views.pt"))

# The same views at pickle protocol 4 (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL).
torch.save({"views": views, "want": out["want"]}, os.path.join(here, "torch_proto4.pt"), pickle_protocol=4)
