package org.edgevlm.core;

/** The portable 64-bit generator of runtime/sampling.py: same seed, same stream, bit for bit. */
public final class SplitMix64 {
    private long state;

    public SplitMix64(long seed) {
        this.state = seed;
    }

    public long nextU64() {
        state += 0x9E3779B97F4A7C15L; // wraps mod 2^64 like the Python mask
        long z = state;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** A double in [0, 1) with 53 random bits. */
    public double uniform() {
        return (nextU64() >>> 11) * (1.0 / (1L << 53));
    }
}
