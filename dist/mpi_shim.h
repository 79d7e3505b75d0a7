// MPI loaded at run time (dlopen), for either of the two C ABIs in use: Open MPI's, whose handles are
// pointers to the library's predefined objects (&ompi_mpi_comm_world), and MPICH's (also Intel MPI,
// MVAPICH, Cray MPICH: the "MPICH ABI"), whose handles are ints with fixed values (0x44000000). Go sees
// every handle as a uintptr_t; the shim calls each function through a pointer of the right type for the
// library it opened. No mpi.h is needed to build.
#ifndef VJEPA_DIST_MPI_SHIM_H
#define VJEPA_DIST_MPI_SHIM_H
#include <stdint.h>

enum { VJ_MPI_NONE = 0, VJ_MPI_OPENMPI = 1, VJ_MPI_MPICH = 2 };
enum { VJ_FLOAT = 0, VJ_DOUBLE = 1, VJ_BYTE = 2, VJ_INT = 3 };
enum { VJ_SUM = 0, VJ_MAX = 1, VJ_MIN = 2 };

// vj_mpi_open dlopens lib (RTLD_GLOBAL: Open MPI's plugins resolve symbols from libmpi) and resolves
// every function; returns the flavor, or VJ_MPI_NONE with a message in err.
int vj_mpi_open(const char* lib, char* err, int errlen);
// vj_mpi_probe dlopens lib privately (RTLD_LOCAL) and writes its MPI_Get_library_version (callable
// before MPI_Init) into out; returns 0 with dlerror in out when it does not load.
int vj_mpi_probe(const char* lib, char* out, int outlen);
int vj_mpi_init(int required, int* provided);
int vj_mpi_finalize(void);
uintptr_t vj_mpi_comm_world(void);
int vj_mpi_comm_rank(uintptr_t comm, int* rank);
int vj_mpi_comm_size(uintptr_t comm, int* size);
int vj_mpi_comm_split_shared(uintptr_t comm, int key, uintptr_t* out);
int vj_mpi_comm_free(uintptr_t* comm);
int vj_mpi_allreduce(void* buf, int count, int type, int op, uintptr_t comm);
int vj_mpi_bcast(void* buf, int count, int type, int root, uintptr_t comm);
int vj_mpi_barrier(uintptr_t comm);
int vj_mpi_alltoall(const void* send, int count, int type, void* recv, uintptr_t comm);
int vj_mpi_alltoallv(const void* send, const int* scounts, const int* sdispls, void* recv, const int* rcounts,
                     const int* rdispls, uintptr_t comm);
int vj_mpi_allgather(const void* send, int count, int type, void* recv, uintptr_t comm);
int vj_mpi_abort(uintptr_t comm, int code);
int vj_mpi_library_version(char* out, int outlen);
void vj_mpi_error_string(int code, char* out, int outlen);
#endif
