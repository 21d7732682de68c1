/* idle: the loop thread's waits, timed; see idle.h.
 *
 * The worker runs the python3 executable, which imports the bridge with
 * RTLD_LOCAL: a definition of epoll_wait in the bridge would interpose on
 * nothing. So the waits are found where the loaded objects call them: their
 * GOT slots for epoll_wait and epoll_pwait (the select module in the
 * interpreter, libuv under uvloop), pointed once at the wrappers below.
 * Objects loaded later keep the C library's: their waits count as busy. */
#include "core/idle.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/metrics.h"

#if defined(__x86_64__)
#define JUMP_SLOT R_X86_64_JUMP_SLOT
#define GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define JUMP_SLOT R_AARCH64_JUMP_SLOT
#define GLOB_DAT R_AARCH64_GLOB_DAT
#endif

typedef int (*wait_fn)(int, struct epoll_event *, int, int);
typedef int (*pwait_fn)(int, struct epoll_event *, int, int, const sigset_t *);

static wait_fn real_wait;
static pwait_fn real_pwait;
/* set on the loop thread; the app's own threads only ever compare */
static _Atomic(gp_slot *) tracked;
static pthread_t loop_thread;

/* The slot to charge a wait to, or NULL: another thread, or one that
 * cannot block (asyncio and libuv poll with 0 while callbacks are ready). */
static gp_slot *timed(int timeout)
{
    gp_slot *s = atomic_load_explicit(&tracked, memory_order_relaxed);
    return timeout != 0 && s && pthread_equal(pthread_self(), loop_thread) ? s : NULL;
}

static int idle_wait(int fd, struct epoll_event *ev, int max, int timeout)
{
    gp_slot *s = timed(timeout);
    if (!s) return real_wait(fd, ev, max, timeout);
    gp_metrics_busy_close(s, gp_metrics_now_us());
    int n = real_wait(fd, ev, max, timeout);
    int e = errno;
    gp_metrics_busy_open(s, gp_metrics_now_us());
    errno = e;
    return n;
}

static int idle_pwait(int fd, struct epoll_event *ev, int max, int timeout, const sigset_t *ss)
{
    gp_slot *s = timed(timeout);
    if (!s) return real_pwait(fd, ev, max, timeout, ss);
    gp_metrics_busy_close(s, gp_metrics_now_us());
    int n = real_pwait(fd, ev, max, timeout, ss);
    int e = errno;
    gp_metrics_busy_open(s, gp_metrics_now_us());
    errno = e;
    return n;
}

#ifdef JUMP_SLOT
/* glibc has already relocated the dynamic section's pointers in place;
 * other loaders may not have */
static uintptr_t dyn_ptr(uintptr_t base, uintptr_t p)
{
    return p < base ? base + p : p;
}

/* The loader made the whole pages of RELRO read-only once relocated (the
 * last, partial one stays writable); everything else in the GOT is
 * writable as it is. */
typedef struct {
    uintptr_t ro_start, ro_end;
} relro;

static void patch_slot(const relro *ro, uintptr_t slot, void *to)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = slot & ~(page - 1);
    bool ro_page = start >= ro->ro_start && start + page <= ro->ro_end;
    if (ro_page && mprotect((void *)start, page, PROT_READ | PROT_WRITE) < 0) return;
    *(void **)slot = to;
    if (ro_page) mprotect((void *)start, page, PROT_READ);
}

static void patch_relocs(uintptr_t base, const relro *ro, const ElfW(Rela) * r, size_t size,
                         const ElfW(Sym) * syms, const char *strs)
{
    for (size_t i = 0; r && i < size / sizeof *r; i++) {
        unsigned long type = ELF64_R_TYPE(r[i].r_info);
        if (type != JUMP_SLOT && type != GLOB_DAT) continue;
        const char *name = strs + syms[ELF64_R_SYM(r[i].r_info)].st_name;
        void *to = !strcmp(name, "epoll_wait")    ? (void *)idle_wait
                   : !strcmp(name, "epoll_pwait") ? (void *)idle_pwait
                                                  : NULL;
        if (to) patch_slot(ro, base + r[i].r_offset, to);
    }
}

static int patch_object(struct dl_phdr_info *info, size_t size, void *unused)
{
    uintptr_t base = info->dlpi_addr;
    const ElfW(Dyn) *dyn = NULL;
    relro ro = {0, 0};
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(base + ph->p_vaddr);
        if (ph->p_type == PT_GNU_RELRO) {
            ro.ro_start = (base + ph->p_vaddr) & ~(page - 1);
            ro.ro_end = (base + ph->p_vaddr + ph->p_memsz) & ~(page - 1);
        }
    }
    if (!dyn || strstr(info->dlpi_name, "linux-vdso")) return 0;
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t jmpsz = 0, relasz = 0;
    const ElfW(Sym) *syms = NULL;
    const char *strs = NULL;
    bool is_rela = true;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        uintptr_t p = dyn->d_un.d_ptr;
        switch (dyn->d_tag) {
        case DT_JMPREL: jmprel = (const ElfW(Rela) *)dyn_ptr(base, p); break;
        case DT_PLTRELSZ: jmpsz = dyn->d_un.d_val; break;
        case DT_PLTREL: is_rela = dyn->d_un.d_val == DT_RELA; break;
        case DT_RELA: rela = (const ElfW(Rela) *)dyn_ptr(base, p); break;
        case DT_RELASZ: relasz = dyn->d_un.d_val; break;
        case DT_SYMTAB: syms = (const ElfW(Sym) *)dyn_ptr(base, p); break;
        case DT_STRTAB: strs = (const char *)dyn_ptr(base, p); break;
        }
    }
    if (!syms || !strs || !is_rela) return 0;
    patch_relocs(base, &ro, jmprel, jmpsz, syms, strs);
    patch_relocs(base, &ro, rela, relasz, syms, strs);
    return 0;
}
#endif

void gp_idle_track(gp_slot *s)
{
#ifdef JUMP_SLOT
    if (!real_wait) {
        real_wait = (wait_fn)dlsym(RTLD_DEFAULT, "epoll_wait");
        real_pwait = (pwait_fn)dlsym(RTLD_DEFAULT, "epoll_pwait");
        if (!real_wait || !real_pwait) return;
        /* wrappers first, then the slots: no call can reach one unset */
        dl_iterate_phdr(patch_object, NULL);
    }
    loop_thread = pthread_self();
    atomic_store_explicit(&s->m_busy_loop, 1, memory_order_relaxed);
    gp_metrics_busy_open(s, gp_metrics_now_us());
    atomic_store_explicit(&tracked, s, memory_order_relaxed);
#endif
}
