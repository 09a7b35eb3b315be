/* Draws the reports' charts as inline SVG (bars, stacked columns, per-day strips). */
#include <inttypes.h>
#include <stdio.h>

#include "audit.h"
#include "svg-chart.h"

static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
                                      "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#2ca02c",
                                      "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

static void text(FILE *f, double x, double y, const char *anchor, const char *s)
{
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", x, y, anchor);
        audit_html_text(f, s);
        fputs("</text>", f);
}

static void begin(FILE *f, const char *title, int w, int h)
{
        fprintf(f,
                "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
                "height=\"%d\" "
                "role=\"img\" font-size=\"10\" font-family=\"sans-serif\"><title>",
                w, h, w, h);
        audit_html_text(f, title);
        fputs("</title>", f);
}

static void end(FILE *f, const char *title)
{
        fputs("</svg><figcaption>", f);
        audit_html_text(f, title);
        fputs("</figcaption></figure>\n", f);
}

void svg_bars(FILE *f, const char *title, const char *const *labels, const uint64_t *values, size_t n)
{
        const int w = 680, left = 110, right = 50, bar = 14, gap = 4;
        int h = 20 + (int)n * (bar + gap) + 10;
        uint64_t max = 1;
        for (size_t i = 0; i < n; i++)
                if (values[i] > max)
                        max = values[i];
        begin(f, title, w, h);
        if (n == 0)
                text(f, w / 2.0, 20, "middle", "—");
        for (size_t i = 0; i < n; i++) {
                double y = 10 + (double)i * (bar + gap),
                       len = (double)(w - left - right) * (double)values[i] / (double)max;
                char v[24];
                text(f, left - 6, y + bar - 3, "end", labels[i]);
                fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>", left, y,
                        len, bar, palette[0]);
                snprintf(v, sizeof(v), "%" PRIu64, values[i]);
                text(f, left + len + 4, y + bar - 3, "start", v);
        }
        end(f, title);
}

void svg_stacked_columns(FILE *f, const char *title, const char *const *col_labels, size_t n_cols,
                         const char *const *series_labels, size_t n_series, const uint64_t *values)
{
        const int w = 680, left = 40, top = 10, plot_h = 180, legend_row = 14;
        int legend_rows = (int)(n_series + 1) / 2;
        int h = top + plot_h + 20 + legend_rows * legend_row + 10;
        uint64_t max = 1;
        for (size_t c = 0; c < n_cols; c++) {
                uint64_t sum = 0;
                for (size_t s = 0; s < n_series; s++)
                        sum += values[s * n_cols + c];
                if (sum > max)
                        max = sum;
        }
        begin(f, title, w, h);
        double cw = n_cols ? (double)(w - left - 10) / (double)n_cols : 0;
        char v[24];
        snprintf(v, sizeof(v), "%" PRIu64, max);
        text(f, left - 4, top + 8, "end", v);
        text(f, left - 4, top + plot_h, "end", "0");
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>", left, top + plot_h,
                w - 10, top + plot_h);
        for (size_t c = 0; c < n_cols; c++) {
                double x = left + (double)c * cw, y = top + plot_h;
                for (size_t s = 0; s < n_series; s++) {
                        uint64_t val = values[s * n_cols + c];
                        if (!val)
                                continue;
                        double hh = (double)plot_h * (double)val / (double)max;
                        y -= hh;
                        fprintf(f,
                                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>",
                                x + 2, y, cw - 4, hh, palette[s % ELEMENTSOF(palette)]);
                }
                text(f, x + cw / 2, top + plot_h + 12, "middle", col_labels[c]);
        }
        for (size_t s = 0; s < n_series; s++) {
                double x = left + (double)(s % 2) * 315,
                       y = top + plot_h + 22 + (double)(s / 2) * legend_row;
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>", x, y,
                        palette[s % ELEMENTSOF(palette)]);
                text(f, x + 14, y + 9, "start", series_labels[s]);
        }
        end(f, title);
}

void svg_day_strips(FILE *f, const char *title, const char *const *row_labels, size_t n_rows, size_t n_days,
                    const uint64_t *values, const char *first_day, const char *last_day)
{
        const int w = 680, left = 80, strip = 24, gap = 6;
        int h = 10 + (int)n_rows * (strip + gap) + 16;
        uint64_t max = 1;
        for (size_t i = 0; i < n_rows * n_days; i++)
                if (values[i] > max)
                        max = values[i];
        begin(f, title, w, h);
        double dw = n_days ? (double)(w - left - 10) / (double)n_days : 0;
        for (size_t r = 0; r < n_rows; r++) {
                double y0 = 10 + (double)r * (strip + gap);
                text(f, left - 6, y0 + strip - 6, "end", row_labels[r]);
                fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#bbb\"/>", left,
                        y0 + strip, w - 10, y0 + strip);
                for (size_t d = 0; d < n_days; d++) {
                        uint64_t val = values[r * n_days + d];
                        if (!val)
                                continue;
                        double hh = (double)strip * (double)val / (double)max;
                        fprintf(f,
                                "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\"/>",
                                left + (double)d * dw, y0 + strip - hh, dw > 1.2 ? dw - 0.4 : dw, hh,
                                palette[0]);
                }
        }
        double y = 10 + (double)n_rows * (strip + gap) + 8;
        text(f, left, y, "start", first_day);
        text(f, w - 10, y, "end", last_day);
        char v[48];
        snprintf(v, sizeof(v), "max %" PRIu64 " / day", max);
        text(f, (left + w) / 2.0, y, "middle", v);
        end(f, title);
}
