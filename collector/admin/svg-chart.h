/* Plain charts as inline SVG for the HTML reports: no script, no external resource. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Horizontal bars, one per label (e.g. failures per operator). */
void svg_bars(FILE *f, const char *title, const char *const *labels, const uint64_t *values, size_t n);

/* Stacked columns: n_cols columns (e.g. months), n_series stacked (e.g. kinds); values[s * n_cols + c]. */
void svg_stacked_columns(FILE *f, const char *title, const char *const *col_labels, size_t n_cols,
                         const char *const *series_labels, size_t n_series, const uint64_t *values);

/* One strip per row (e.g. terminal) of n_days thin columns (e.g. sessions per day); values[r * n_days + d].
 * first_day / last_day label the axis. */
void svg_day_strips(FILE *f, const char *title, const char *const *row_labels, size_t n_rows, size_t n_days,
                    const uint64_t *values, const char *first_day, const char *last_day);
