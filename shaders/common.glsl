// common.glsl: definitions shared by every vjepa-vk compute shader.
#extension GL_EXT_control_flow_attributes : enable

// Workgroup size of 1-D shaders is specialization constant 0, so it can be tuned per device. Shaders use
// LOCAL_X, never gl_WorkGroupSize: with local_size_x_id the latter is folded to its default (1) by some
// compilers before specialization (seen with glslc -O on lavapipe).
#define LOCAL_SIZE_1D layout(local_size_x_id = 0) in; layout(constant_id = 0) const uint LOCAL_X = 256;

// A 1-D grid larger than maxComputeWorkGroupCount[0] (65535 on many devices) folds into y.
#define GLOBAL_INDEX_1D ((gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * LOCAL_X + gl_LocalInvocationID.x)
