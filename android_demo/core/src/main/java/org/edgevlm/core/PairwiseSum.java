package org.edgevlm.core;

/**
 * numpy's float64 sum of a contiguous array (pairwise_sum in loops_utils): blocks of up to 128 summed with
 * 8 interleaved accumulators, larger ranges split in halves (multiples of 8). Same order, same rounding.
 */
public final class PairwiseSum {
    private PairwiseSum() {
    }

    public static double sum(double[] a, int start, int n) {
        if (n < 8) {
            double res = 0.0;
            for (int i = 0; i < n; i++) {
                res += a[start + i];
            }
            return res;
        }
        if (n <= 128) {
            double[] r = new double[8];
            for (int j = 0; j < 8; j++) {
                r[j] = a[start + j];
            }
            int i;
            for (i = 8; i < n - (n % 8); i += 8) {
                for (int j = 0; j < 8; j++) {
                    r[j] += a[start + i + j];
                }
            }
            double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (; i < n; i++) {
                res += a[start + i];
            }
            return res;
        }
        int n2 = n / 2;
        n2 -= n2 % 8;
        return sum(a, start, n2) + sum(a, start + n2, n - n2);
    }
}
