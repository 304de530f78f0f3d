package org.edgevlm.demo

/**
 * Text deltas from a growing list of token ids whose concatenation is the full decode (port of
 * edgevlm/processing/tokenizer.py StreamDecoder): decoding one token alone breaks UTF-8 split over byte tokens and
 * drops SentencePiece spaces, so a short window of earlier tokens is decoded with the new ones and only the text
 * past the window is emitted, holding back while the tail is an incomplete UTF-8 sequence (U+FFFD).
 */
class StreamDecoder(private val tokenizer: HfTokenizer) {
    private val ids = ArrayList<Long>()
    private var prefixOffset = 0
    private var readOffset = 0

    fun push(tokenId: Long): String {
        ids.add(tokenId)
        val window = tokenizer.decode(ids.subList(prefixOffset, readOffset))
        val full = tokenizer.decode(ids.subList(prefixOffset, ids.size))
        if (full.length > window.length && !full.endsWith("\uFFFD")) {
            prefixOffset = readOffset
            readOffset = ids.size
            return full.substring(window.length)
        }
        return ""
    }

    fun flush(): String {
        val window = tokenizer.decode(ids.subList(prefixOffset, readOffset))
        val full = tokenizer.decode(ids.subList(prefixOffset, ids.size))
        prefixOffset = ids.size
        readOffset = ids.size
        return if (full.length > window.length) full.substring(window.length) else ""
    }
}
