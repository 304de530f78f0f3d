package org.edgevlm.core;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * A self-contained test runner: every public no-argument method named test* of the classes below runs on a
 * fresh instance built with the golden directory. Prints one line per test and closes with exactly
 * "N passed, M failed"; exits 1 when anything failed. Usage: TestRunner GOLDEN_DIR [name-filter].
 */
public final class TestRunner {
    static final List<Class<?>> CLASSES = Arrays.asList(CoreUnitTest.class, ManifestGoldenTest.class,
            SlicingGoldenTest.class, AnyresGoldenTest.class, NativeResolutionGoldenTest.class, VisionInputsGoldenTest.class,
            PromptGoldenTest.class, TokenLayoutGoldenTest.class,
            SamplerGoldenTest.class, GenerationGoldenTest.class);

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: TestRunner GOLDEN_DIR [name-filter]");
            System.exit(2);
        }
        Golden golden = new Golden(Paths.get(args[0]));
        String filter = args.length > 1 ? args[1] : "";
        int passed = 0;
        int failed = 0;
        for (Class<?> type : CLASSES) {
            Method[] methods = type.getDeclaredMethods();
            Arrays.sort(methods, Comparator.comparing(Method::getName));
            for (Method m : methods) {
                String name = type.getSimpleName() + "." + m.getName();
                if (!m.getName().startsWith("test") || m.getParameterCount() != 0 || !Modifier.isPublic(m.getModifiers())
                        || !name.contains(filter)) {
                    continue;
                }
                long t0 = System.nanoTime();
                try {
                    Object instance = type.getDeclaredConstructor(Golden.class).newInstance(golden);
                    m.invoke(instance);
                    passed++;
                    System.out.printf("ok   %s (%.0f ms)%n", name, (System.nanoTime() - t0) / 1e6);
                } catch (InvocationTargetException ex) {
                    failed++;
                    Throwable cause = ex.getCause();
                    System.out.printf("FAIL %s: %s%n", name, cause instanceof Check.Failure ? cause.getMessage() : cause);
                    if (!(cause instanceof Check.Failure)) {
                        cause.printStackTrace(System.out);
                    }
                }
            }
        }
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 && passed > 0 ? 0 : 1);
    }
}
