// reduce.glsl: deterministic workgroup reductions through shared memory, for 1-D shaders (LOCAL_SIZE_1D,
// LOCAL_X a power of two). Every invocation of the workgroup must call them (they contain barriers), and
// each returns the result to all invocations. The tree has a fixed shape, so a result depends only on the
// inputs and LOCAL_X, never on scheduling: no float atomics anywhere.

shared vec2 reduce_shared[LOCAL_X];

// workgroup_sum2 returns the sum over the workgroup of v, both components at once.
vec2 workgroup_sum2(vec2 v) {
    uint t = gl_LocalInvocationID.x;
    reduce_shared[t] = v;
    barrier();
    for (uint s = LOCAL_X / 2; s > 0; s >>= 1) {
        if (t < s) reduce_shared[t] += reduce_shared[t + s];
        barrier();
    }
    vec2 r = reduce_shared[0];
    barrier(); // the next call overwrites reduce_shared
    return r;
}

float workgroup_sum(float v) { return workgroup_sum2(vec2(v, 0)).x; }

// max_nan is max(a, b) that returns NaN when either is NaN (GLSL's max leaves that undefined).
float max_nan(float a, float b) { return (a > b || isnan(a)) ? a : b; }

// workgroup_max2 returns the NaN-propagating maximum over the workgroup of v, per component.
vec2 workgroup_max2(vec2 v) {
    uint t = gl_LocalInvocationID.x;
    reduce_shared[t] = v;
    barrier();
    for (uint s = LOCAL_X / 2; s > 0; s >>= 1) {
        if (t < s) {
            vec2 a = reduce_shared[t], b = reduce_shared[t + s];
            reduce_shared[t] = vec2(max_nan(a.x, b.x), max_nan(a.y, b.y));
        }
        barrier();
    }
    vec2 r = reduce_shared[0];
    barrier();
    return r;
}
