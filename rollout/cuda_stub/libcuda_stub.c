/*
 * A stand-in for the NVIDIA driver library (libcuda.so.1) on machines without one.
 *
 * PyPI's sgl-kernel wheels are CUDA builds whose shared objects are linked against libcuda.so.1,
 * and SGLang's CPU path imports them, so on a machine with no NVIDIA driver the import fails
 * before any CPU code runs. This library satisfies the loader: every driver entry point that
 * sgl_kernel imports (appended below by rollout/cuda_stub/__init__.py from `nm -D
 * --undefined-only`) and the ones the CUDA runtime probes first return CUDA_ERROR_NO_DEVICE, so
 * any code that does try the GPU learns there is none. It is never used where a real driver is
 * installed.
 */
#define CUDA_ERROR_NO_DEVICE 100
#define STUB(name) int name(void) { return CUDA_ERROR_NO_DEVICE; }

/* Probed by the CUDA runtime / torch before anything else. */
STUB(cuInit)
STUB(cuDriverGetVersion)
STUB(cuDeviceGetCount)
STUB(cuDeviceGet)
STUB(cuGetProcAddress)
STUB(cuGetProcAddress_v2)
STUB(cuGetExportTable)

/* Symbols imported by the installed sgl_kernel shared objects follow (generated). */
