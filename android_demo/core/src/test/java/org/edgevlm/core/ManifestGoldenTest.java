package org.edgevlm.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/** Manifest reading and verification against edgevlm/manifest.py on valid and damaged bundles (manifests.json). */
public final class ManifestGoldenTest {
    private final Map<String, Object> data;

    public ManifestGoldenTest(Golden golden) {
        data = golden.json("manifests.json");
    }

    public void testSameVerdictAndMessageAsPython() {
        int n = 0;
        for (Object item : JsonMap.getList(data, "cases")) {
            Map<String, Object> c = JsonMap.map(item, "case");
            String name = JsonMap.getString(c, "name", null);
            String dir = JsonMap.getString(c, "dir", null);
            if (JsonMap.getBool(c, "ok", false)) {
                Manifest m = BundleReader.read(dir, true);
                Check.equal(c.get("format"), m.format, name + " format");
                Check.equal(c.get("family"), m.family, name + " family");
                Check.equal(c.get("attention"), m.attention, name + " attention");
                Check.equal(c.get("parts"), new ArrayList<Object>(new TreeSet<>(m.parts.keySet())), name + " parts");
                Check.equal(c.get("files"), new ArrayList<Object>(new TreeSet<>(m.files.keySet())), name + " files");
                Check.equal(c.get("max_context"), m.part("decoder").extra.get("max_context"), name + " max_context");
                Check.equal(c.get("kv"), m.part("decoder").kv, name + " kv names");
                Check.equal("past_key.3", m.part("decoder").kvName("past_key", 3), name + " kv template");
            } else {
                BundleException ex = Check.raises(BundleException.class, () -> BundleReader.read(dir, true), name);
                String expected = JsonMap.getString(c, "message", null);
                String actual = ex.getMessage();
                if ("prefix".equals(c.get("match"))) {
                    Check.isTrue(actual.startsWith(expected), name + ": " + Py.repr(actual) + " does not start with " + Py.repr(expected));
                } else {
                    Check.equal(expected, actual, name + " message");
                }
            }
            n++;
        }
        System.out.println("     manifests: " + n + " cases, same verdict and message as Python");
        List<Object> cases = JsonMap.getList(data, "cases");
        Check.isTrue(cases.size() >= 15, "expected the damaged-bundle cases");
    }
}
