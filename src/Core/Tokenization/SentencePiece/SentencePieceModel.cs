namespace Peft.Onnx.Core.Tokenization;

internal enum SentencePieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

internal enum SentencePieceAlgorithm { Unigram = 1, Bpe = 2, Word = 3, Char = 4 }

internal readonly record struct SentencePiece(string Text, float Score, SentencePieceType Type);

/// <summary>
/// The parts of a sentencepiece <c>ModelProto</c> (spiece.model / tokenizer.model) that tokenization needs:
/// the piece table, the algorithm, the special ids and the normalizer switches. Field numbers are those of
/// sentencepiece_model.proto.
/// </summary>
internal sealed class SentencePieceModel
{
    private readonly Dictionary<string, int> _idByPiece = new(StringComparer.Ordinal);

    public required IReadOnlyList<SentencePiece> Pieces { get; init; }
    public required byte[] Bytes { get; init; }
    public SentencePieceAlgorithm Algorithm { get; private init; } = SentencePieceAlgorithm.Unigram;
    public int UnkId { get; private init; }
    public int BosId { get; private init; } = 1;
    public int EosId { get; private init; } = 2;
    public int PadId { get; private init; } = -1;
    public bool ByteFallback { get; private init; }
    public string UnkSurface { get; private init; } = " \u2047 ";
    public bool AddDummyPrefix { get; private init; } = true;
    public bool RemoveExtraWhitespaces { get; private init; } = true;
    public bool EscapeWhitespaces { get; private init; } = true;
    public bool TreatWhitespaceAsSuffix { get; private init; }

    /// <summary>normalizer_spec.precompiled_charsmap (empty for the "identity" normalizer).</summary>
    public byte[] CharsMap { get; private init; } = [];

    /// <summary>sentencepiece's PieceToId: every piece type is looked up; an unknown string maps to the unk id.</summary>
    public int PieceToId(string piece) => _idByPiece.TryGetValue(piece, out var id) ? id : UnkId;

    public bool Contains(string piece) => _idByPiece.ContainsKey(piece);

    public SentencePieceType TypeOf(int id) => Pieces[id].Type;

    /// <summary>Parses and checks a model; throws <see cref="InvalidDataException"/> on anything unusable.</summary>
    public static SentencePieceModel Parse(byte[] bytes)
    {
        var pieces = new List<SentencePiece>();
        bool sawTrainer = false, sawNormalizer = false;
        var algorithm = SentencePieceAlgorithm.Unigram;
        int unk = 0, bos = 1, eos = 2, pad = -1;
        bool byteFallback = false, dummyPrefix = true, removeSpaces = true, escapeSpaces = true, spaceAsSuffix = false;
        byte[] charsMap = [];
        string unkSurface = " \u2047 ";

        var reader = new ProtoReader(bytes);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.ReadTag();
            if (field == 1 && wire == ProtoReader.LengthDelimited) pieces.Add(ReadPiece(reader.ReadBytes()));
            else if (field == 2 && wire == ProtoReader.LengthDelimited)
            {
                sawTrainer = true;
                var trainer = new ProtoReader(reader.ReadBytes());
                while (!trainer.AtEnd)
                {
                    var (f, w) = trainer.ReadTag();
                    switch (f)
                    {
                        case 3 when w == ProtoReader.Varint: algorithm = (SentencePieceAlgorithm)trainer.ReadInt32(); break;
                        case 24 when w == ProtoReader.Varint: spaceAsSuffix = trainer.ReadVarint() != 0; break;
                        case 35 when w == ProtoReader.Varint: byteFallback = trainer.ReadVarint() != 0; break;
                        case 40 when w == ProtoReader.Varint: unk = trainer.ReadInt32(); break;
                        case 41 when w == ProtoReader.Varint: bos = trainer.ReadInt32(); break;
                        case 42 when w == ProtoReader.Varint: eos = trainer.ReadInt32(); break;
                        case 43 when w == ProtoReader.Varint: pad = trainer.ReadInt32(); break;
                        case 44 when w == ProtoReader.LengthDelimited: unkSurface = trainer.ReadString(); break;
                        default: trainer.Skip(w); break;
                    }
                }
            }
            else if (field == 3 && wire == ProtoReader.LengthDelimited)
            {
                sawNormalizer = true;
                var normalizer = new ProtoReader(reader.ReadBytes());
                while (!normalizer.AtEnd)
                {
                    var (f, w) = normalizer.ReadTag();
                    switch (f)
                    {
                        case 2 when w == ProtoReader.LengthDelimited: charsMap = normalizer.ReadBytes().ToArray(); break;
                        case 3 when w == ProtoReader.Varint: dummyPrefix = normalizer.ReadVarint() != 0; break;
                        case 4 when w == ProtoReader.Varint: removeSpaces = normalizer.ReadVarint() != 0; break;
                        case 5 when w == ProtoReader.Varint: escapeSpaces = normalizer.ReadVarint() != 0; break;
                        default: normalizer.Skip(w); break;
                    }
                }
            }
            else reader.Skip(wire);
        }

        // A file cut at a message boundary parses cleanly, so check that the parts written after the pieces exist.
        if (pieces.Count == 0) throw new InvalidDataException("no pieces (not a sentencepiece model)");
        if (!sawTrainer || !sawNormalizer) throw new InvalidDataException("trainer_spec or normalizer_spec missing (truncated file?)");
        if (algorithm is not (SentencePieceAlgorithm.Unigram or SentencePieceAlgorithm.Bpe))
            throw new InvalidDataException($"model_type {algorithm} is not supported (expected UNIGRAM or BPE)");
        if (unk < 0 || unk >= pieces.Count || pieces[unk].Type != SentencePieceType.Unknown)
            throw new InvalidDataException($"unk_id {unk} does not name an <unk> piece");

        var model = new SentencePieceModel
        {
            Pieces = pieces, Bytes = bytes, Algorithm = algorithm, UnkId = unk, BosId = bos, EosId = eos, PadId = pad,
            ByteFallback = byteFallback, UnkSurface = unkSurface,
            AddDummyPrefix = dummyPrefix, RemoveExtraWhitespaces = removeSpaces, EscapeWhitespaces = escapeSpaces,
            TreatWhitespaceAsSuffix = spaceAsSuffix, CharsMap = charsMap,
        };
        for (int id = 0; id < pieces.Count; id++) model._idByPiece.TryAdd(pieces[id].Text, id);
        return model;
    }

    private static SentencePiece ReadPiece(ReadOnlySpan<byte> bytes)
    {
        var reader = new ProtoReader(bytes);
        string text = "";
        float score = 0;
        var type = SentencePieceType.Normal;
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.ReadTag();
            if (field == 1 && wire == ProtoReader.LengthDelimited) text = reader.ReadString();
            else if (field == 2 && wire == ProtoReader.Fixed32) score = reader.ReadFloat();
            else if (field == 3 && wire == ProtoReader.Varint) type = (SentencePieceType)reader.ReadInt32();
            else reader.Skip(wire);
        }
        if (!Enum.IsDefined(type)) throw new InvalidDataException($"piece '{text}' has unknown type {(int)type}");
        return new SentencePiece(text, score, type);
    }
}
