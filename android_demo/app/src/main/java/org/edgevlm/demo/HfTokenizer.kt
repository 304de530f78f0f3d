package org.edgevlm.demo

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer
import org.edgevlm.core.TextTokenizer
import java.io.File

/**
 * The bundle's tokenizer.json through the Hugging Face tokenizers library (DJL's JNI build), like
 * edgevlm/processing/tokenizer.py: special tokens in the text are parsed as special tokens and nothing is added
 * (the chat template already holds BOS etc.).
 */
class HfTokenizer(tokenizerJson: File) : TextTokenizer, AutoCloseable {
    private val tokenizer = HuggingFaceTokenizer.newInstance(
        tokenizerJson.toPath(),
        mapOf("addSpecialTokens" to "false", "truncation" to "false", "padding" to "false"),
    )
    private val ids = HashMap<String, Long?>()

    override fun encode(text: String): LongArray = tokenizer.encode(text).ids

    /** The id of a (special) token: encoding it alone must give exactly one id, else the vocabulary lacks it. */
    override fun tokenToId(token: String): Long? = ids.getOrPut(token) {
        val encoded = tokenizer.encode(token).ids
        if (encoded.size == 1) encoded[0] else null
    }

    fun decode(ids: List<Long>, skipSpecialTokens: Boolean = true): String =
        tokenizer.decode(ids.toLongArray(), skipSpecialTokens)

    override fun close() = tokenizer.close()
}
