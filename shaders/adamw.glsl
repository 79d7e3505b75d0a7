// adamw.glsl: the AdamHyper buffer (layout of vk.AdamHyper, vk/adamw.go) and the AdamW element update
// (spec §10) shared by adamw.comp and adamw8bit.comp. Define HYPER_BINDING before including.

layout(std430, binding = HYPER_BINDING) readonly buffer Hyper {
    float lr, beta1, beta2, eps, weight_decay, bc1, bc2, grad_scale, skip;
} h;

// adam_update applies one AdamW step to a parameter and its moments from the gradient g (already
// multiplied by grad_scale), in PyTorch's order and form (torch.optim.AdamW, foreach=False):
// decoupled decay first, then p -= (lr/bc1)·m / (sqrt(v)/sqrt(bc2) + eps).
void adam_update(inout float p, inout float m, inout float v, float g, bool decay) {
    if (decay) p *= 1.0 - h.lr * h.weight_decay;
    m = h.beta1 * m + (1.0 - h.beta1) * g;
    v = h.beta2 * v + (1.0 - h.beta2) * g * g;
    p -= (h.lr / h.bc1) * m / (sqrt(v) / sqrt(h.bc2) + h.eps);
}
