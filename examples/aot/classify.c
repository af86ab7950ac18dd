/* classify.c: run the ahead-of-time compiled classifier from C.
 *
 *   classify INPUTS.f32
 *
 * INPUTS.f32 holds N rows of raw float32 features (native byte order, row-major); N follows from
 * the file's size, so any batch size works: it is passed to the model as its run-time dimension.
 * Prints, for every row, the predicted class and its probability.  Everything the program needs to
 * know about the model (row length, output sizes, C types, error codes) comes from the generated
 * header classifier.h, so it works unchanged for any model compiled with the same interface:
 * x[N, F] -> (probabilities[N, C], classes[N]).
 *
 * Build (see README.md): cc -std=c99 -I build classify.c -L build -l:classifier.so -Wl,-rpath,'$ORIGIN'
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "classifier.h"

#if CLASSIFIER_NUM_DIMS != 1 || CLASSIFIER_NUM_INPUTS != 1 || CLASSIFIER_NUM_OUTPUTS != 2
#error "classify.c expects one run-time dimension (the batch size), one input and two outputs"
#endif

enum { PROBABILITIES = 0, CLASSES = 1 }; /* the order the outputs were compiled in */

/* Read the whole file into a malloc'ed buffer; returns NULL (after printing why) on failure. */
static void *read_file(const char *path, long *size) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        perror(path);
        return NULL;
    }
    void *data = NULL;
    if (fseek(file, 0, SEEK_END) == 0 && (*size = ftell(file)) >= 0 && fseek(file, 0, SEEK_SET) == 0) {
        data = malloc(*size > 0 ? (size_t)*size : 1);
        if (data != NULL && fread(data, 1, (size_t)*size, file) != (size_t)*size) {
            free(data);
            data = NULL;
        }
    }
    if (data == NULL)
        fprintf(stderr, "%s: cannot read the file\n", path);
    fclose(file);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s INPUTS.f32\n", argv[0]);
        return 2;
    }

    /* The number of features per row: the input's size for a batch of one. */
    const int64_t one[CLASSIFIER_NUM_DIMS] = {1};
    const int64_t row_bytes = CLASSIFIER_INPUT_0_SIZE(one) * (int64_t)sizeof(classifier_input_0_t);

    long size = 0;
    classifier_input_0_t *x = read_file(argv[1], &size);
    if (x == NULL)
        return 1;
    if (size == 0 || size % row_bytes != 0) {
        fprintf(stderr, "%s: %ld bytes is not a whole, non-zero number of rows of %" PRId64 " bytes\n",
                argv[1], size, row_bytes);
        free(x);
        return 1;
    }

    /* dims[0] is the batch size (x.shape[0]); the output sizes follow from it. */
    const int64_t dims[CLASSIFIER_NUM_DIMS] = {size / row_bytes};
    classifier_output_0_t *probabilities = malloc(CLASSIFIER_OUTPUT_0_SIZE(dims) * sizeof *probabilities);
    classifier_output_1_t *classes = malloc(CLASSIFIER_OUTPUT_1_SIZE(dims) * sizeof *classes);
    if (probabilities == NULL || classes == NULL) {
        fprintf(stderr, "out of memory\n");
        free(x);
        free(probabilities);
        free(classes);
        return 1;
    }

    const void *inputs[CLASSIFIER_NUM_INPUTS] = {x};
    void *outputs[CLASSIFIER_NUM_OUTPUTS];
    outputs[PROBABILITIES] = probabilities;
    outputs[CLASSES] = classes;

    int code = classifier_run(dims, inputs, outputs);
    if (code != CLASSIFIER_OK) {
        fprintf(stderr, "classifier_run failed: error %d: %s\n", code, classifier_error_string(code));
    } else {
        const int64_t n_classes = CLASSIFIER_OUTPUT_0_DIM_1(dims);
        for (int64_t row = 0; row < dims[0]; row++) {
            int64_t c = classes[row];
            printf("row %" PRId64 ": class %" PRId64 ", probability %.9g\n", row, c,
                   (double)probabilities[row * n_classes + c]);
        }

        /* The error path: a negative batch size is refused before anything is read or written. */
        const int64_t bad_dims[CLASSIFIER_NUM_DIMS] = {-1};
        int bad = classifier_run(bad_dims, inputs, outputs);
        printf("a batch of -1 rows: error %d: %s\n", bad, classifier_error_string(bad));
        if (bad != CLASSIFIER_ERROR_NEGATIVE_DIM) {
            fprintf(stderr, "expected error %d (CLASSIFIER_ERROR_NEGATIVE_DIM)\n", CLASSIFIER_ERROR_NEGATIVE_DIM);
            code = -1;
        }
    }

    free(x);
    free(probabilities);
    free(classes);
    return code == CLASSIFIER_OK ? 0 : 1;
}
