package vk

// WideLavapipeCPU is wideLavapipeCPU, for TestLavapipeWidth's expectations.
var WideLavapipeCPU = wideLavapipeCPU
