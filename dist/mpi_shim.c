#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "mpi_shim.h"

// The functions whose arguments include handles, declared once per handle type: H is void* in Open MPI,
// int in the MPICH ABI. Both structs hold the same function pointers, in the order of names[].
#define HANDLE_FUNCS(H)                                                                                 \
	int (*comm_rank)(H, int*);                                                                          \
	int (*comm_size)(H, int*);                                                                          \
	int (*comm_split_type)(H, int, int, H, H*);                                                         \
	int (*comm_free)(H*);                                                                               \
	int (*allreduce)(const void*, void*, int, H, H, H);                                                 \
	int (*bcast)(void*, int, H, int, H);                                                                \
	int (*barrier)(H);                                                                                  \
	int (*alltoall)(const void*, int, H, void*, int, H, H);                                             \
	int (*alltoallv)(const void*, const int*, const int*, H, void*, const int*, const int*, H, H);       \
	int (*allgather)(const void*, int, H, void*, int, H, H);                                            \
	int (*abort)(H, int);

static const char* names[] = {"MPI_Comm_rank", "MPI_Comm_size", "MPI_Comm_split_type", "MPI_Comm_free",
	"MPI_Allreduce", "MPI_Bcast", "MPI_Barrier", "MPI_Alltoall", "MPI_Alltoallv", "MPI_Allgather", "MPI_Abort"};
#define NFUNCS (sizeof names / sizeof names[0])

typedef struct { HANDLE_FUNCS(void*) } ompi_funcs;
typedef struct { HANDLE_FUNCS(int) } mpich_funcs;
static ompi_funcs om;
static mpich_funcs mp;

static int (*init_thread)(int*, char***, int, int*);
static int (*finalize)(void);
static int (*get_library_version)(char*, int*);
static int (*error_string)(int, char*, int*);

static int flavor;
static uintptr_t world, info_null, types[4], ops[3];
static void* in_place;
static int comm_type_shared;

// Open MPI's predefined handles are the addresses of these objects in libmpi.
static const char* ompi_types[4] = {"ompi_mpi_float", "ompi_mpi_double", "ompi_mpi_byte", "ompi_mpi_int"};
static const char* ompi_ops[3] = {"ompi_mpi_op_sum", "ompi_mpi_op_max", "ompi_mpi_op_min"};
// The MPICH ABI's fixed handle values (mpi.h of MPICH 3.1 and later).
static const uintptr_t mpich_types[4] = {0x4c00040a, 0x4c00080b, 0x4c00010d, 0x4c000405};
static const uintptr_t mpich_ops[3] = {0x58000003, 0x58000001, 0x58000002};

int vj_mpi_open(const char* lib, char* err, int errlen) {
	if (flavor) return flavor;
	void* h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
	if (!h) {
		snprintf(err, errlen, "%s", dlerror());
		return VJ_MPI_NONE;
	}
	void* fns[NFUNCS];
	for (unsigned i = 0; i < NFUNCS; i++) {
		if (!(fns[i] = dlsym(h, names[i]))) {
			snprintf(err, errlen, "%s: no symbol %s", lib, names[i]);
			return VJ_MPI_NONE;
		}
	}
	_Static_assert(sizeof om == sizeof fns && sizeof mp == sizeof fns, "one pointer per name");
	memcpy(&om, fns, sizeof fns);
	memcpy(&mp, fns, sizeof fns);
	*(void**)&init_thread = dlsym(h, "MPI_Init_thread");
	*(void**)&finalize = dlsym(h, "MPI_Finalize");
	*(void**)&get_library_version = dlsym(h, "MPI_Get_library_version");
	*(void**)&error_string = dlsym(h, "MPI_Error_string");
	if (!init_thread || !finalize || !get_library_version || !error_string) {
		snprintf(err, errlen, "%s: missing MPI_Init_thread, MPI_Finalize, MPI_Get_library_version or MPI_Error_string", lib);
		return VJ_MPI_NONE;
	}
	void* ow = dlsym(h, "ompi_mpi_comm_world");
	if (ow) {
		world = (uintptr_t)ow;
		info_null = (uintptr_t)dlsym(h, "ompi_mpi_info_null");
		for (int i = 0; i < 4; i++) types[i] = (uintptr_t)dlsym(h, ompi_types[i]);
		for (int i = 0; i < 3; i++) ops[i] = (uintptr_t)dlsym(h, ompi_ops[i]);
		for (int i = 0; i < 4; i++)
			if (!types[i]) {
				snprintf(err, errlen, "%s: no symbol %s", lib, ompi_types[i]);
				return VJ_MPI_NONE;
			}
		for (int i = 0; i < 3; i++)
			if (!ops[i]) {
				snprintf(err, errlen, "%s: no symbol %s", lib, ompi_ops[i]);
				return VJ_MPI_NONE;
			}
		if (!info_null) {
			snprintf(err, errlen, "%s: no symbol ompi_mpi_info_null", lib);
			return VJ_MPI_NONE;
		}
		in_place = (void*)1;
		comm_type_shared = 0;
		flavor = VJ_MPI_OPENMPI;
	} else {
		world = 0x44000000;
		info_null = 0x1c000000;
		memcpy(types, mpich_types, sizeof types);
		memcpy(ops, mpich_ops, sizeof ops);
		in_place = (void*)-1;
		comm_type_shared = 1;
		flavor = VJ_MPI_MPICH;
	}
	return flavor;
}

int vj_mpi_probe(const char* lib, char* out, int outlen) {
	void* h = dlopen(lib, RTLD_LAZY | RTLD_LOCAL);
	if (!h) {
		snprintf(out, outlen, "%s", dlerror());
		return 0;
	}
	int (*version)(char*, int*);
	*(void**)&version = dlsym(h, "MPI_Get_library_version");
	if (!version) {
		snprintf(out, outlen, "%s: no MPI_Get_library_version", lib);
		return 0;
	}
	static char buf[8192];
	int n = 0;
	version(buf, &n);
	if (n < 0) n = 0;
	if (n >= (int)sizeof buf) n = sizeof buf - 1;
	buf[n] = 0;
	snprintf(out, outlen, "%s", buf);
	return 1;
}

int vj_mpi_init(int required, int* provided) { return init_thread(0, 0, required, provided); }
int vj_mpi_finalize(void) { return finalize(); }
uintptr_t vj_mpi_comm_world(void) { return world; }

#define OM (flavor == VJ_MPI_OPENMPI)
#define HO(x) ((void*)(x))
#define HM(x) ((int)(x))

int vj_mpi_comm_rank(uintptr_t c, int* r) { return OM ? om.comm_rank(HO(c), r) : mp.comm_rank(HM(c), r); }
int vj_mpi_comm_size(uintptr_t c, int* n) { return OM ? om.comm_size(HO(c), n) : mp.comm_size(HM(c), n); }

int vj_mpi_comm_split_shared(uintptr_t c, int key, uintptr_t* out) {
	if (OM) {
		void* o = 0;
		int rc = om.comm_split_type(HO(c), comm_type_shared, key, HO(info_null), &o);
		*out = (uintptr_t)o;
		return rc;
	}
	int o = 0;
	int rc = mp.comm_split_type(HM(c), comm_type_shared, key, HM(info_null), &o);
	*out = (uintptr_t)(unsigned)o;
	return rc;
}

int vj_mpi_comm_free(uintptr_t* c) {
	if (OM) {
		void* o = HO(*c);
		return om.comm_free(&o);
	}
	int o = HM(*c);
	return mp.comm_free(&o);
}

int vj_mpi_allreduce(void* buf, int n, int t, int op, uintptr_t c) {
	return OM ? om.allreduce(in_place, buf, n, HO(types[t]), HO(ops[op]), HO(c))
	          : mp.allreduce(in_place, buf, n, HM(types[t]), HM(ops[op]), HM(c));
}

int vj_mpi_bcast(void* buf, int n, int t, int root, uintptr_t c) {
	return OM ? om.bcast(buf, n, HO(types[t]), root, HO(c)) : mp.bcast(buf, n, HM(types[t]), root, HM(c));
}

int vj_mpi_barrier(uintptr_t c) { return OM ? om.barrier(HO(c)) : mp.barrier(HM(c)); }

int vj_mpi_alltoall(const void* send, int n, int t, void* recv, uintptr_t c) {
	return OM ? om.alltoall(send, n, HO(types[t]), recv, n, HO(types[t]), HO(c))
	          : mp.alltoall(send, n, HM(types[t]), recv, n, HM(types[t]), HM(c));
}

int vj_mpi_alltoallv(const void* send, const int* sc, const int* sd, void* recv, const int* rc, const int* rd, uintptr_t c) {
	return OM ? om.alltoallv(send, sc, sd, HO(types[VJ_BYTE]), recv, rc, rd, HO(types[VJ_BYTE]), HO(c))
	          : mp.alltoallv(send, sc, sd, HM(types[VJ_BYTE]), recv, rc, rd, HM(types[VJ_BYTE]), HM(c));
}

int vj_mpi_allgather(const void* send, int n, int t, void* recv, uintptr_t c) {
	return OM ? om.allgather(send, n, HO(types[t]), recv, n, HO(types[t]), HO(c))
	          : mp.allgather(send, n, HM(types[t]), recv, n, HM(types[t]), HM(c));
}

int vj_mpi_abort(uintptr_t c, int code) { return OM ? om.abort(HO(c), code) : mp.abort(HM(c), code); }

int vj_mpi_library_version(char* out, int outlen) {
	// MPICH's MPI_MAX_LIBRARY_VERSION_STRING is 8192, Open MPI's 256: take the larger.
	static char buf[8192];
	int n = 0;
	int rc = get_library_version(buf, &n);
	if (n < 0) n = 0;
	if (n >= (int)sizeof buf) n = sizeof buf - 1;
	buf[n] = 0;
	snprintf(out, outlen, "%s", buf);
	return rc;
}

void vj_mpi_error_string(int code, char* out, int outlen) {
	static char buf[8192];
	int n = 0;
	if (error_string(code, buf, &n) != 0 || n <= 0) {
		snprintf(out, outlen, "MPI error %d", code);
		return;
	}
	if (n >= (int)sizeof buf) n = sizeof buf - 1;
	buf[n] = 0;
	snprintf(out, outlen, "%s", buf);
}
