/*
 * A C program that uses libebmc through include/ebm.h, run by
 * capi/tests/c_driver.rs:
 *
 *   driver MODEL CORRUPT NOT_A_MODEL MISSING
 *
 * MODEL holds energies `quad(x: [2])` (parameters W [2, 2], b [2]) and
 * `shifted(x: [2] | c: [2])`, and a model `f`. The driver prints one line
 * per result, `key: v v v ...`, every float as the hex of its bits (so the
 * Rust test compares bitwise), and one line `error KEY: message` per
 * refused call. It checks return codes itself and exits nonzero (after a
 * line `FAIL: ...`) when a call that must succeed fails or one that must
 * fail succeeds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebm.h"

#define BATCH 5
#define DIM 2

static int failures = 0;

static void fail(const char *what, char *err) {
    printf("FAIL: %s: %s\n", what, err ? err : "(no message)");
    ebm_free_error(err);
    failures++;
}

static void print_f64(const char *key, const double *v, size_t n) {
    size_t i;
    printf("%s:", key);
    for (i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        printf(" %016llx", (unsigned long long)bits);
    }
    printf("\n");
}

static void print_f32(const char *key, const float *v, size_t n) {
    size_t i;
    printf("%s:", key);
    for (i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        printf(" %08lx", (unsigned long)bits);
    }
    printf("\n");
}

/* A call that must fail: prints its message, checks the code. */
static void refused(const char *key, int rc, char *err) {
    if (rc == EBM_OK) {
        printf("FAIL: %s succeeded\n", key);
        failures++;
        return;
    }
    if (err == NULL) {
        printf("FAIL: %s returned %d without a message\n", key, rc);
        failures++;
        return;
    }
    printf("error %s: %s\n", key, err);
    ebm_free_error(err);
}

/* Runs `call` (which stores its message in `err`) and checks it failed;
 * the call is sequenced before `err` is read. */
#define REFUSE(key, call)            \
    do {                             \
        int rc_ = (call);            \
        refused((key), rc_, err);    \
        err = NULL;                  \
    } while (0)

/* ebm_model_open on a file it must refuse. */
static void refused_open(const char *key, const char *path) {
    char *err = NULL;
    ebm_model *m = ebm_model_open(path, &err);
    if (m != NULL) {
        printf("FAIL: opening %s succeeded\n", path);
        ebm_model_free(m);
        failures++;
        return;
    }
    refused(key, EBM_ERROR, err);
}

int main(int argc, char **argv) {
    double x[BATCH * DIM], v[BATCH * DIM], c[BATCH * DIM];
    double e[BATCH], g[BATCH * DIM], h[BATCH * DIM], w[4], w2[4];
    float xf[BATCH * DIM], vf[BATCH * DIM], cf[BATCH * DIM];
    float ef[BATCH], gf[BATCH * DIM], hf[BATCH * DIM];
    char *err = NULL;
    ebm_model *m;
    size_t i;

    if (argc != 5) {
        fprintf(stderr, "usage: driver MODEL CORRUPT NOT_A_MODEL MISSING\n");
        return 2;
    }
    for (i = 0; i < BATCH * DIM; i++) {
        x[i] = (double)(i % 7) * 0.25 - 0.8;
        v[i] = (double)(i % 5) * 0.5 - 1.0;
        c[i] = (double)(i % 3) * 0.75 - 0.5;
        xf[i] = (float)x[i];
        vf[i] = (float)v[i];
        cf[i] = (float)c[i];
    }
    print_f64("x", x, BATCH * DIM);
    print_f64("v", v, BATCH * DIM);
    print_f64("c", c, BATCH * DIM);
    print_f32("xf", xf, BATCH * DIM);
    print_f32("vf", vf, BATCH * DIM);
    print_f32("cf", cf, BATCH * DIM);
    printf("version: %s %u\n", ebm_version(), (unsigned)ebm_format_version());

    m = ebm_model_open(argv[1], &err);
    if (m == NULL) {
        fail("ebm_model_open", err);
        return 1;
    }

    /* Listing. */
    printf("defs:");
    for (i = 0; i < ebm_model_num_defs(m); i++) {
        printf(" %s/%d", ebm_model_def_name(m, i), ebm_model_def_kind(m, i));
    }
    printf("\n");
    printf("past the end: %s %d\n", ebm_model_def_name(m, 99) == NULL ? "NULL" : "?",
           ebm_model_def_kind(m, 99));
    printf("dims: %lld %lld %lld %lld %lld\n", (long long)ebm_model_dim(m, "quad"),
           (long long)ebm_model_cond_dim(m, "quad"), (long long)ebm_model_dim(m, "shifted"),
           (long long)ebm_model_cond_dim(m, "shifted"), (long long)ebm_model_dim(m, "nope"));
    printf("params:");
    for (i = 0; i < ebm_model_num_params(m); i++) {
        const char *name = ebm_model_param_name(m, i);
        printf(" %s/%lld", name, (long long)ebm_model_param_size(m, name));
    }
    printf("\n");

    /* Evaluation in f64. */
    if (ebm_energy_f64(m, "quad", x, NULL, BATCH, e, &err)) fail("energy_f64", err);
    print_f64("energy_f64", e, BATCH);
    if (ebm_grad_f64(m, "quad", x, NULL, BATCH, e, g, &err)) fail("grad_f64", err);
    print_f64("grad_f64.energy", e, BATCH);
    print_f64("grad_f64", g, BATCH * DIM);
    if (ebm_grad_f64(m, "quad", x, NULL, BATCH, NULL, g, &err)) fail("grad_f64 (no energy)", err);
    print_f64("grad_f64.alone", g, BATCH * DIM);
    if (ebm_hvp_f64(m, "quad", x, NULL, BATCH, v, h, &err)) fail("hvp_f64", err);
    print_f64("hvp_f64", h, BATCH * DIM);
    if (ebm_energy_f64(m, "shifted", x, c, BATCH, e, &err)) fail("shifted energy_f64", err);
    print_f64("shifted.energy_f64", e, BATCH);
    if (ebm_grad_f64(m, "shifted", x, c, BATCH, NULL, g, &err)) fail("shifted grad_f64", err);
    print_f64("shifted.grad_f64", g, BATCH * DIM);
    if (ebm_hvp_f64(m, "shifted", x, c, BATCH, v, h, &err)) fail("shifted hvp_f64", err);
    print_f64("shifted.hvp_f64", h, BATCH * DIM);

    /* Evaluation in f32. */
    if (ebm_energy_f32(m, "quad", xf, NULL, BATCH, ef, &err)) fail("energy_f32", err);
    print_f32("energy_f32", ef, BATCH);
    if (ebm_grad_f32(m, "quad", xf, NULL, BATCH, ef, gf, &err)) fail("grad_f32", err);
    print_f32("grad_f32.energy", ef, BATCH);
    print_f32("grad_f32", gf, BATCH * DIM);
    if (ebm_hvp_f32(m, "quad", xf, NULL, BATCH, vf, hf, &err)) fail("hvp_f32", err);
    print_f32("hvp_f32", hf, BATCH * DIM);
    if (ebm_grad_f32(m, "shifted", xf, cf, BATCH, ef, gf, &err)) fail("shifted grad_f32", err);
    print_f32("shifted.grad_f32.energy", ef, BATCH);
    print_f32("shifted.grad_f32", gf, BATCH * DIM);

    /* A batch of 0 writes nothing and succeeds. */
    e[0] = 12345.0;
    if (ebm_energy_f64(m, "quad", x, NULL, 0, e, &err)) fail("empty batch", err);
    printf("empty batch: %s\n", e[0] == 12345.0 ? "untouched" : "written");

    /* Parameters: read W, set it, evaluate again (f64 and f32 see it). */
    if (ebm_model_get_param(m, "W", w, 4, &err)) fail("get_param", err);
    print_f64("W", w, 4);
    for (i = 0; i < 4; i++) w2[i] = (double)i * 0.5 - 0.75;
    if (ebm_model_set_param(m, "W", w2, 4, &err)) fail("set_param", err);
    if (ebm_model_get_param(m, "W", w, 4, &err)) fail("get_param after set", err);
    print_f64("W.after", w, 4);
    if (ebm_energy_f64(m, "quad", x, NULL, BATCH, e, &err)) fail("energy_f64 after set", err);
    print_f64("after.energy_f64", e, BATCH);
    if (ebm_energy_f32(m, "quad", xf, NULL, BATCH, ef, &err)) fail("energy_f32 after set", err);
    print_f32("after.energy_f32", ef, BATCH);

    /* Outputs may alias inputs: the gradient written over x. */
    {
        double xs[BATCH * DIM];
        memcpy(xs, x, sizeof xs);
        if (ebm_grad_f64(m, "quad", xs, NULL, BATCH, NULL, xs, &err)) fail("aliased grad", err);
        if (ebm_grad_f64(m, "quad", x, NULL, BATCH, NULL, g, &err)) fail("grad", err);
        printf("aliased grad: %s\n", memcmp(xs, g, sizeof xs) == 0 ? "same" : "different");
    }

    /* Refusals. */
    refused_open("open missing", argv[4]);
    refused_open("open corrupt", argv[2]);
    refused_open("open not a model", argv[3]);
    refused_open("open NULL", NULL);
    REFUSE("unknown energy", ebm_energy_f64(m, "nope", x, NULL, BATCH, e, &err));
    REFUSE("model as energy", ebm_energy_f64(m, "f", x, NULL, BATCH, e, &err));
    REFUSE("NULL handle", ebm_energy_f64(NULL, "quad", x, NULL, BATCH, e, &err));
    REFUSE("NULL name", ebm_energy_f64(m, NULL, x, NULL, BATCH, e, &err));
    REFUSE("NULL x", ebm_energy_f64(m, "quad", NULL, NULL, BATCH, e, &err));
    REFUSE("NULL out", ebm_energy_f64(m, "quad", x, NULL, BATCH, NULL, &err));
    REFUSE("NULL grad", ebm_grad_f64(m, "quad", x, NULL, BATCH, e, NULL, &err));
    REFUSE("NULL v", ebm_hvp_f64(m, "quad", x, NULL, BATCH, NULL, h, &err));
    REFUSE("NULL hvp out", ebm_hvp_f32(m, "quad", xf, NULL, BATCH, vf, NULL, &err));
    REFUSE("missing c", ebm_energy_f64(m, "shifted", x, NULL, BATCH, e, &err));
    REFUSE("unexpected c", ebm_grad_f32(m, "quad", xf, cf, BATCH, ef, gf, &err));
    REFUSE("huge batch", ebm_energy_f64(m, "quad", x, NULL, SIZE_MAX, e, &err));
    REFUSE("unknown param", ebm_model_get_param(m, "nope", w, 4, &err));
    REFUSE("wrong param size", ebm_model_set_param(m, "W", w2, 3, &err));
    REFUSE("NULL param values", ebm_model_set_param(m, "W", NULL, 4, &err));
    REFUSE("NULL param out", ebm_model_get_param(m, "b", NULL, 2, &err));
    printf("NULL handle listing: %u %u %lld %s\n", (unsigned)ebm_model_num_defs(NULL),
           (unsigned)ebm_model_num_params(NULL), (long long)ebm_model_dim(NULL, "quad"),
           ebm_model_param_name(NULL, 0) == NULL ? "NULL" : "?");
    /* No error pointer: still a code, nothing written. */
    printf("no err pointer: %d\n", ebm_energy_f64(m, "nope", x, NULL, BATCH, e, NULL));
    ebm_free_error(NULL);

    ebm_model_free(m);
    ebm_model_free(NULL);
    printf("failures: %d\n", failures);
    return failures == 0 ? 0 : 1;
}
