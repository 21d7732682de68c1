/* reuseport: owns the SK_REUSEPORT eBPF program that spreads --reuse-port
 * connections round-robin over the workers, and its maps; see reuseport.h.
 *
 * The program is written here as raw instructions (no compiler for BPF, no
 * libbpf) and loaded with bpf(2). Maps:
 *   ctr    a u32 per listener: its connections handed out so far (an atomic
 *          add in the kernel; one per listener, or two ports used in turn
 *          would each always land on the same worker)
 *   order  one value {u32 n; u32 slot[slots]}: the serving workers' slots,
 *          written by the master as workers come and go
 *   socks  per listener, a REUSEPORT_SOCKARRAY: slot -> that worker's socket
 *          (the kernel empties an entry when its socket closes)
 * Per connection the program takes i = ctr++ % n and selects socks[slot[i]];
 * an empty entry (a worker still booting joins only once ready; one that
 * died is emptied by the kernel before the master notices) makes it draw
 * again, up to RP_TRIES times. If none answers it selects nothing and the
 * kernel's hash picks, so a connection is never refused for its sake.
 * Must never run on the request path: only the master and worker start-up. */
#include "core/reuseport.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif

#define RP_TRIES 16 /* listed slots tried per connection before the hash decides */
#define RP_MAX_INSNS 512

struct gp_reuseport {
    int slots;
    int listeners;
    int ctr_fd, order_fd;
    int *socks_fd, *prog_fd; /* per listener */
    uint32_t *order;         /* {n, slot[slots]} as last written */
    bool order_stale;        /* the last write failed: write again next time */
    bool migrates;           /* a closing socket's queue moves to the others */
};

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    long r = syscall(SYS_bpf, cmd, attr, sizeof *attr);
    return r < 0 ? -errno : (int)r;
}

static int map_create(uint32_t type, uint32_t value_size, uint32_t entries, const char *name)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_type = type;
    a.key_size = 4;
    a.value_size = value_size;
    a.max_entries = entries;
    snprintf(a.map_name, sizeof a.map_name, "%s", name);
    return sys_bpf(BPF_MAP_CREATE, &a);
}

static int map_update(int fd, uint32_t key, const void *value)
{
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_fd = (uint32_t)fd;
    a.key = (uint64_t)(uintptr_t)&key;
    a.value = (uint64_t)(uintptr_t)value;
    a.flags = BPF_ANY;
    return sys_bpf(BPF_MAP_UPDATE_ELEM, &a);
}

/* ---- the program ------------------------------------------------------------ */

static struct bpf_insn ins(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    return (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

#define MOV_REG(d, s) ins(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV_IMM(d, k) ins(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, k)
#define ADD_IMM(d, k) ins(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, k)
#define ADD_REG(d, s) ins(BPF_ALU64 | BPF_ADD | BPF_X, d, s, 0, 0)
#define LSH_IMM(d, k) ins(BPF_ALU64 | BPF_LSH | BPF_K, d, 0, 0, k)
#define MOD32_REG(d, s) ins(BPF_ALU | BPF_MOD | BPF_X, d, s, 0, 0)
#define LDX_W(d, s, o) ins(BPF_LDX | BPF_MEM | BPF_W, d, s, o, 0)
#define STX_W(d, s, o) ins(BPF_STX | BPF_MEM | BPF_W, d, s, o, 0)
#define ST_W(d, o, k) ins(BPF_ST | BPF_MEM | BPF_W, d, 0, o, k)
#define ATOMIC_W(d, s, op) ins(BPF_STX | BPF_ATOMIC | BPF_W, d, s, 0, op)
#define CALL(f) ins(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define JMP_IMM(op, d, k) ins(BPF_JMP | (op) | BPF_K, d, 0, 0, k) /* off patched */
#define JMP_REG(op, d, s, o) ins(BPF_JMP | (op) | BPF_X, d, s, o, 0)
#define EXIT() ins(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

typedef struct {
    struct bpf_insn *p;
    int n;
    int to_pass[RP_MAX_INSNS]; /* jumps whose target is the final "return SK_PASS" */
    int num_to_pass;
} prog_buf;

static void emit(prog_buf *b, struct bpf_insn i)
{
    if (b->n < RP_MAX_INSNS) b->p[b->n] = i;
    b->n++;
}

static void emit_to_pass(prog_buf *b, struct bpf_insn i)
{
    if (b->num_to_pass < RP_MAX_INSNS) b->to_pass[b->num_to_pass++] = b->n;
    emit(b, i);
}

static void emit_map_fd(prog_buf *b, uint8_t reg, int fd)
{
    emit(b, ins(BPF_LD | BPF_DW | BPF_IMM, reg, BPF_PSEUDO_MAP_FD, 0, fd));
    emit(b, ins(0, 0, 0, 0, 0));
}

/* Writes the program into out (RP_MAX_INSNS room) and returns its length.
 * Each try draws the next counter value, so a listed slot whose socket is
 * not there (a worker still booting, or dead) passes its turn to the next
 * listed one that is: the rotation is over the joined sockets alone.
 * fetch: the kernel has atomic fetch-and-add (5.12); without it two
 * connections arriving at the same instant on two CPUs may get one worker.
 * Registers kept across calls: r6 ctx, r7 counter, r8 order value, r9 n. */
static int build_prog(struct bpf_insn *out, int ctr_fd, int listener, int order_fd, int socks_fd,
                      int slots, bool fetch)
{
    prog_buf b = {.p = out};

    emit(&b, MOV_REG(BPF_REG_6, BPF_REG_1));
    emit(&b, ST_W(BPF_REG_10, -4, listener));
    emit(&b, MOV_REG(BPF_REG_2, BPF_REG_10));
    emit(&b, ADD_IMM(BPF_REG_2, -4));
    emit_map_fd(&b, BPF_REG_1, ctr_fd);
    emit(&b, CALL(BPF_FUNC_map_lookup_elem));
    emit_to_pass(&b, JMP_IMM(BPF_JEQ, BPF_REG_0, 0));
    emit(&b, MOV_REG(BPF_REG_7, BPF_REG_0));
    emit(&b, ST_W(BPF_REG_10, -4, 0)); /* order has one entry */
    emit(&b, MOV_REG(BPF_REG_2, BPF_REG_10));
    emit(&b, ADD_IMM(BPF_REG_2, -4));
    emit_map_fd(&b, BPF_REG_1, order_fd);
    emit(&b, CALL(BPF_FUNC_map_lookup_elem));
    emit_to_pass(&b, JMP_IMM(BPF_JEQ, BPF_REG_0, 0));
    emit(&b, MOV_REG(BPF_REG_8, BPF_REG_0));
    emit(&b, LDX_W(BPF_REG_9, BPF_REG_8, 0));
    emit_to_pass(&b, JMP_IMM(BPF_JEQ, BPF_REG_9, 0));
    emit_to_pass(&b, JMP_IMM(BPF_JGT, BPF_REG_9, slots));
    for (int t = 0; t < RP_TRIES; t++) {
        if (fetch) {
            emit(&b, MOV_IMM(BPF_REG_1, 1));
            emit(&b, ATOMIC_W(BPF_REG_7, BPF_REG_1, BPF_ADD | BPF_FETCH));
        } else {
            emit(&b, LDX_W(BPF_REG_1, BPF_REG_7, 0));
            emit(&b, MOV_IMM(BPF_REG_2, 1));
            emit(&b, ATOMIC_W(BPF_REG_7, BPF_REG_2, BPF_ADD));
        }
        emit(&b, MOD32_REG(BPF_REG_1, BPF_REG_9));
        /* the bound the verifier needs for slot[i] */
        emit_to_pass(&b, JMP_IMM(BPF_JGE, BPF_REG_1, slots));
        emit(&b, LSH_IMM(BPF_REG_1, 2));
        emit(&b, MOV_REG(BPF_REG_2, BPF_REG_8));
        emit(&b, ADD_REG(BPF_REG_2, BPF_REG_1));
        emit(&b, LDX_W(BPF_REG_3, BPF_REG_2, 4));
        emit(&b, STX_W(BPF_REG_10, BPF_REG_3, -8));
        emit(&b, MOV_REG(BPF_REG_1, BPF_REG_6));
        emit_map_fd(&b, BPF_REG_2, socks_fd);
        emit(&b, MOV_REG(BPF_REG_3, BPF_REG_10));
        emit(&b, ADD_IMM(BPF_REG_3, -8));
        emit(&b, MOV_IMM(BPF_REG_4, 0));
        emit(&b, CALL(BPF_FUNC_sk_select_reuseport));
        emit_to_pass(&b, JMP_IMM(BPF_JEQ, BPF_REG_0, 0)); /* selected */
    }
    int pass = b.n;
    emit(&b, MOV_IMM(BPF_REG_0, SK_PASS));
    emit(&b, EXIT());
    if (b.n > RP_MAX_INSNS) return -1;
    for (int i = 0; i < b.num_to_pass; i++)
        out[b.to_pass[i]].off = (int16_t)(pass - b.to_pass[i] - 1);
    return b.n;
}

/* Loads the program for one listener: the newest form the kernel takes
 * (migrating a closing socket's queue needs 5.14, fetch-and-add 5.12). */
static int load_prog(int ctr_fd, int listener, int order_fd, int socks_fd, int slots,
                     bool *migrates)
{
    static const struct {
        bool migrate, fetch;
    } forms[] = {{true, true}, {false, true}, {false, false}};
    struct bpf_insn insns[RP_MAX_INSNS];
    int fd = -EINVAL;

    for (size_t f = 0; f < sizeof forms / sizeof *forms; f++) {
        int n = build_prog(insns, ctr_fd, listener, order_fd, socks_fd, slots, forms[f].fetch);
        union bpf_attr a;
        memset(&a, 0, sizeof a);
        a.prog_type = BPF_PROG_TYPE_SK_REUSEPORT;
        a.expected_attach_type =
            forms[f].migrate ? BPF_SK_REUSEPORT_SELECT_OR_MIGRATE : BPF_SK_REUSEPORT_SELECT;
        a.insns = (uint64_t)(uintptr_t)insns;
        a.insn_cnt = (uint32_t)n;
        a.license = (uint64_t)(uintptr_t) "Dual MIT/GPL";
        snprintf(a.prog_name, sizeof a.prog_name, "gallop_rr");
        fd = sys_bpf(BPF_PROG_LOAD, &a);
        *migrates = forms[f].migrate;
        /* only an older kernel's "no such form" is worth another try */
        if (fd >= 0 || (fd != -EINVAL && fd != -ENOSPC)) break;
    }
    return fd;
}

/* ---- the module ------------------------------------------------------------- */

int gp_reuseport_create(int listeners, int slots, gp_reuseport **out, char *why, size_t whylen)
{
    gp_reuseport *rp = calloc(1, sizeof *rp);
    int rc = -ENOMEM;
    const char *what = "out of memory";

    *out = NULL;
    if (!rp) goto fail;
    rp->slots = slots;
    rp->listeners = listeners;
    rp->ctr_fd = rp->order_fd = -1;
    rp->socks_fd = malloc((size_t)listeners * sizeof *rp->socks_fd);
    rp->prog_fd = malloc((size_t)listeners * sizeof *rp->prog_fd);
    rp->order = calloc((size_t)slots + 1, sizeof *rp->order);
    if (!rp->socks_fd || !rp->prog_fd || !rp->order) goto fail;
    for (int i = 0; i < listeners; i++) rp->socks_fd[i] = rp->prog_fd[i] = -1;

    what = "cannot create a BPF map";
    if ((rc = rp->ctr_fd =
             map_create(BPF_MAP_TYPE_ARRAY, 4, (uint32_t)listeners, "gallop_rr_ctr")) < 0)
        goto fail;
    if ((rc = rp->order_fd =
             map_create(BPF_MAP_TYPE_ARRAY, 4 * ((uint32_t)slots + 1), 1, "gallop_rr_order")) < 0)
        goto fail;
    if ((rc = map_update(rp->order_fd, 0, rp->order)) < 0) goto fail;
    for (int i = 0; i < listeners; i++) {
        what = "cannot create a REUSEPORT_SOCKARRAY map";
        /* 8-byte values: user space then reads socket cookies back */
        rc = rp->socks_fd[i] =
            map_create(BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 8, (uint32_t)slots, "gallop_rr_socks");
        if (rc < 0) goto fail;
        what = "cannot load the SK_REUSEPORT program";
        if ((rc = rp->prog_fd[i] =
                 load_prog(rp->ctr_fd, i, rp->order_fd, rp->socks_fd[i], slots, &rp->migrates)) < 0)
            goto fail;
    }
    *out = rp;
    return 0;

fail:
    snprintf(why, whylen, "%s: %s", what, strerror(-rc));
    gp_reuseport_destroy(rp);
    return rc;
}

bool gp_reuseport_migrates(const gp_reuseport *rp)
{
    return rp->migrates;
}

void gp_reuseport_destroy(gp_reuseport *rp)
{
    if (!rp) return;
    for (int i = 0; rp->socks_fd && rp->prog_fd && i < rp->listeners; i++) {
        if (rp->socks_fd[i] >= 0) close(rp->socks_fd[i]);
        if (rp->prog_fd[i] >= 0) close(rp->prog_fd[i]);
    }
    if (rp->ctr_fd >= 0) close(rp->ctr_fd);
    if (rp->order_fd >= 0) close(rp->order_fd);
    free(rp->socks_fd);
    free(rp->prog_fd);
    free(rp->order);
    free(rp);
}

void gp_reuseport_listener_fds(const gp_reuseport *rp, int listener, int *socks_fd, int *prog_fd)
{
    bool ok = listener >= 0 && listener < rp->listeners;
    *socks_fd = ok ? rp->socks_fd[listener] : -1;
    *prog_fd = ok ? rp->prog_fd[listener] : -1;
}

int gp_reuseport_join(int socks_fd, int prog_fd, int slot, int fd)
{
    uint64_t value = (uint64_t)fd;
    int rc;

    if (slot < 0) return -EINVAL; /* the kernel checks the map's bound */
    if ((rc = map_update(socks_fd, (uint32_t)slot, &value)) < 0) return rc;
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd, sizeof prog_fd) != 0)
        return -errno;
    return 0;
}

int gp_reuseport_leave(int socks_fd, int slot)
{
    union bpf_attr a;
    uint32_t key = (uint32_t)slot;
    memset(&a, 0, sizeof a);
    a.map_fd = (uint32_t)socks_fd;
    a.key = (uint64_t)(uintptr_t)&key;
    int rc = sys_bpf(BPF_MAP_DELETE_ELEM, &a);
    return rc == -ENOENT ? 0 : rc;
}

int gp_reuseport_set_order(gp_reuseport *rp, const int *slots, int n)
{
    bool same = !rp->order_stale && rp->order[0] == (uint32_t)n;
    int rc;

    if (n < 0 || n > rp->slots) return -EINVAL;
    for (int i = 0; i < n; i++) {
        if (slots[i] < 0 || slots[i] >= rp->slots) return -EINVAL;
        same = same && rp->order[1 + i] == (uint32_t)slots[i];
    }
    if (same) return 0;
    rp->order[0] = (uint32_t)n;
    for (int i = 0; i < n; i++) rp->order[1 + i] = (uint32_t)slots[i];
    rc = map_update(rp->order_fd, 0, rp->order);
    rp->order_stale = rc < 0;
    return rc;
}
