using Microsoft.ML.Tokenizers;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Creates Microsoft.ML.Tokenizers' <see cref="SentencePieceTokenizer"/> for a parsed model. Version 2.0.1 indexes
/// its piece table with trainer_spec.bos_id / eos_id unchecked, so a model without a bos piece (T5, mT5: bos_id = -1)
/// throws IndexOutOfRangeException. Protobuf merges a repeated occurrence of an embedded message into the first
/// one, so appending a second trainer_spec that only sets those ids to the unk id repairs the load without
/// rewriting the file. We never ask ML for bos/eos, so the substituted ids are never emitted.
/// </summary>
internal static class MlSentencePiece
{
    private const int TrainerSpecField = 2, BosIdField = 41, EosIdField = 42;

    public static SentencePieceTokenizer Create(SentencePieceModel model)
    {
        using var stream = new MemoryStream(LoadableBytes(model));
        return SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
    }

    private static byte[] LoadableBytes(SentencePieceModel model)
    {
        bool Valid(int id) => id >= 0 && id < model.Pieces.Count;
        if (Valid(model.BosId) && Valid(model.EosId)) return model.Bytes;

        var patch = new ProtoWriter()
            .Varint(BosIdField, Valid(model.BosId) ? model.BosId : model.UnkId)
            .Varint(EosIdField, Valid(model.EosId) ? model.EosId : model.UnkId);
        return [.. model.Bytes, .. new ProtoWriter().Message(TrainerSpecField, patch).ToArray()];
    }
}
