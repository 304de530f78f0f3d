package org.edgevlm.core;

/** numpy.argsort(-scores, kind="stable"): indices by descending score, ties keep the lower index first. */
final class StableOrder {
    private StableOrder() {
    }

    static int[] descending(double[] scores) {
        int n = scores.length;
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        int[] buffer = new int[n];
        // bottom-up merge sort: stable, O(n log n), no boxing (vocabularies reach 260k)
        for (int width = 1; width < n; width *= 2) {
            for (int lo = 0; lo < n; lo += 2 * width) {
                int mid = Math.min(lo + width, n);
                int hi = Math.min(lo + 2 * width, n);
                int i = lo;
                int j = mid;
                int k = lo;
                while (i < mid && j < hi) {
                    // take from the right run only when strictly better: equal scores keep their order
                    buffer[k++] = scores[order[j]] > scores[order[i]] ? order[j++] : order[i++];
                }
                while (i < mid) {
                    buffer[k++] = order[i++];
                }
                while (j < hi) {
                    buffer[k++] = order[j++];
                }
            }
            int[] swap = order;
            order = buffer;
            buffer = swap;
        }
        return order;
    }
}
