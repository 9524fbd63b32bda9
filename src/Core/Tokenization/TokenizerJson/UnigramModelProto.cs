using System.Text.Json;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Rebuilds a sentencepiece model from a tokenizer.json Unigram model ("vocab": [[piece, score], ...], "unk_id"),
/// so the same Viterbi (Microsoft.ML.Tokenizers) serves tokenizer.json and spiece.model. Its normalizer is switched
/// off: tokenizer.json's own normalizer chain and Metaspace run before it.
/// </summary>
internal static class UnigramModelProto
{
    public static SentencePieceModel Build(JsonElement model, IReadOnlySet<string> controlTokens)
    {
        var vocab = JsonFields.Required(model, "vocab", JsonValueKind.Array);
        int unkId = JsonFields.Int(model, "unk_id") ?? throw new InvalidDataException("Unigram model has no 'unk_id'");
        bool byteFallback = JsonFields.Bool(model, "byte_fallback") ?? false;
        int count = vocab.GetArrayLength();
        if (unkId < 0 || unkId >= count) throw new InvalidDataException($"Unigram unk_id {unkId} is outside the vocabulary");

        var proto = new ProtoWriter();
        int id = 0;
        foreach (var entry in vocab.EnumerateArray())
        {
            if (entry.ValueKind != JsonValueKind.Array || entry.GetArrayLength() != 2 || entry[0].ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"Unigram vocab entry {id} should be [piece, score]");
            string piece = entry[0].GetString()!;
            var type = id == unkId ? SentencePieceType.Unknown
                : controlTokens.Contains(piece) ? SentencePieceType.Control
                : byteFallback && piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) ? SentencePieceType.Byte
                : SentencePieceType.Normal;
            proto.Message(1, new ProtoWriter().String(1, piece).Float(2, (float)entry[1].GetDouble()).Varint(3, (int)type));
            id++;
        }
        proto.Message(2, new ProtoWriter()
            .Varint(3, (int)SentencePieceAlgorithm.Unigram).Varint(35, byteFallback ? 1 : 0)
            .Varint(40, unkId).Varint(41, unkId).Varint(42, unkId).Varint(43, unkId));
        proto.Message(3, new ProtoWriter().String(1, "identity").Varint(3, 0).Varint(4, 0).Varint(5, 0));
        return SentencePieceModel.Parse(proto.ToArray());
    }
}
