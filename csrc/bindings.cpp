// Python bindings of aiflow_comm._C: the CPU kernels always, the CUDA kernels when built with them.
#include <torch/extension.h>

#include "packed_gemm.h"
#include "quant.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "aiflow_comm native kernels (see aiflow_comm/kernels/reference.py for the spec)";
  m.def("quantize_cpu", &quantize_cpu, "Group quantize+pack on the CPU");
  m.def("dequantize_cpu", &dequantize_cpu, "Unpack+dequantize on the CPU");
  m.def("quantize_cpu_out", &quantize_cpu_out, "quantize_cpu into given codes/scales/zero_points");
  m.def("dequantize_cpu_out", &dequantize_cpu_out, "dequantize_cpu into a given output");
  m.def("project_quantize_cpu", &project_quantize_cpu, "quantize(x @ W^T + b) by row tiles");
  m.def("dequantize_project_cpu", &dequantize_project_cpu, "dequantize(codes) @ W^T + b by tiles");
  m.def(
      "packed_gemm_available", [] { return PackedWeight::available(1, 1, 1, 1); },
      "Whether the blocked fused path multiplies with MKL's packed GEMM (else at::addmm)");
  m.def("all_finite_cpu", &all_finite_cpu, "Whether a float32 CPU tensor holds no NaN or Inf");
  m.def("counter_normal_cpu", &counter_normal_cpu, "Counter-based standard normal noise, float32");
#ifdef WITH_CUDA
  m.def("quantize_cuda", &quantize_cuda, "Group quantize+pack on a CUDA device");
  m.def("dequantize_cuda", &dequantize_cuda, "Unpack+dequantize on a CUDA device");
  m.def("project_quantize_cuda", &project_quantize_cuda, "quantize(x @ W^T + b) by row blocks");
  m.def("dequantize_project_cuda", &dequantize_project_cuda,
        "dequantize(codes) @ W^T + b by row blocks, on a CUDA device");
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
