// cuda-check: golden's host-side CUDA program, compiled at bake by the cuda step
// (scripts/50-cuda.sh) with the image's own nvcc for the profile's GPU
// (-arch sm_XY) and installed as /usr/lib/golden/cuda-check.
//
// It asks the CUDA runtime it was built with (linked statically, so it carries
// the toolkit's runtime version) for the driver's CUDA version, its own version
// and the GPUs, runs a trivial kernel on each GPU it finds, and prints ONE JSON
// line that golden/cudacheck.py reads:
//
//   {"schema": 1, "driver": 12020, "driver_error": 0, "runtime": 0,
//    "runtime_error": 100, "cudart": 11080, "device_count": 0, "error": 100,
//    "error_name": "cudaErrorNoDevice", "devices": []}
//
// (what it printed in a bookworm chroot with libcuda1 535.261.03 and no GPU:
// CUDA 11.8's cudaRuntimeGetVersion itself fails there, so "cudart" also gives
// CUDART_VERSION, the runtime it was compiled against.)
//
// Without a GPU (the bake's chroot, the boot test's VM) "error" says whether
// this runtime can use the image's driver: 100 cudaErrorNoDevice when it can,
// 35 cudaErrorInsufficientDriver when the runtime is newer than the driver's
// CUDA version. It exits 0 whenever it printed its line; the verdict is golden's.

#include <cstdio>
#include <cuda_runtime.h>

static const int kSchema = 1;
static const int kThreads = 32;

__global__ void add_index(int *values) {
    values[threadIdx.x] += static_cast<int>(threadIdx.x);
}

// A device name as a JSON string body: only characters that need no escaping.
static void print_name(const char *name) {
    for (const char *c = name; *c != '\0'; ++c) {
        const bool plain = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')
                           || *c == ' ' || *c == '-' || *c == '_' || *c == '.' || *c == '/' || *c == '(' || *c == ')';
        std::putchar(plain ? *c : '?');
    }
}

// Runs the kernel on one device: cudaSuccess when every value came back right.
static cudaError_t run_kernel(int device) {
    cudaError_t err = cudaSetDevice(device);
    if (err != cudaSuccess) {
        return err;
    }
    int host[kThreads] = {0};
    int *dev = nullptr;
    if ((err = cudaMalloc(&dev, sizeof(host))) != cudaSuccess) {
        return err;
    }
    err = cudaMemcpy(dev, host, sizeof(host), cudaMemcpyHostToDevice);
    if (err == cudaSuccess) {
        add_index<<<1, kThreads>>>(dev);
        err = cudaGetLastError();
    }
    if (err == cudaSuccess) {
        err = cudaMemcpy(host, dev, sizeof(host), cudaMemcpyDeviceToHost);
    }
    cudaFree(dev);
    for (int i = 0; err == cudaSuccess && i < kThreads; ++i) {
        if (host[i] != i) {
            return cudaErrorUnknown;
        }
    }
    return err;
}

int main() {
    int driver = 0, runtime = 0, count = 0;
    const cudaError_t driver_error = cudaDriverGetVersion(&driver);
    const cudaError_t runtime_error = cudaRuntimeGetVersion(&runtime);
    const cudaError_t error = cudaGetDeviceCount(&count);
    if (error != cudaSuccess) {
        count = 0;
    }
    std::printf("{\"schema\": %d, \"driver\": %d, \"driver_error\": %d, \"runtime\": %d, \"runtime_error\": %d, "
                "\"cudart\": %d, \"device_count\": %d, \"error\": %d, \"error_name\": \"%s\", \"devices\": [",
                kSchema, driver, static_cast<int>(driver_error), runtime, static_cast<int>(runtime_error), CUDART_VERSION, count,
                static_cast<int>(error), cudaGetErrorName(error));
    for (int i = 0; i < count; ++i) {
        cudaDeviceProp prop;
        const cudaError_t prop_error = cudaGetDeviceProperties(&prop, i);
        const cudaError_t kernel = prop_error == cudaSuccess ? run_kernel(i) : prop_error;
        std::printf("%s{\"index\": %d, \"name\": \"", i ? ", " : "", i);
        print_name(prop_error == cudaSuccess ? prop.name : "");
        std::printf("\", \"cc\": \"%d.%d\", \"kernel\": \"%s\"}", prop_error == cudaSuccess ? prop.major : 0,
                    prop_error == cudaSuccess ? prop.minor : 0, cudaGetErrorName(kernel));
    }
    std::printf("]}\n");
    return std::fflush(stdout) == 0 ? 0 : 1;
}
