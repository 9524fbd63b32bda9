using System.Text;
using Microsoft.ML.Tokenizers;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Encodes text with a sentencepiece model as sentencepiece's SentencePieceProcessor::Encode does: normalize, segment
/// (Unigram: Microsoft.ML.Tokenizers' Viterbi; BPE: <see cref="SentencePieceBpe"/>), then either spell unknown
/// pieces as UTF-8 byte pieces (byte_fallback) or fuse runs of unknown pieces into one, as sentencepiece's
/// PopulateSentencePieceText does.
/// </summary>
internal sealed class SentencePieceEncoder : IChunkEncoder
{
    private readonly SentencePieceModel _model;
    private readonly SentencePieceTextNormalizer _normalizer;
    private readonly SentencePieceBpe? _bpe;
    private readonly SentencePieceTokenizer? _unigram;

    public SentencePieceEncoder(SentencePieceModel model)
    {
        _model = model;
        _normalizer = new SentencePieceTextNormalizer(model);
        if (model.Algorithm == SentencePieceAlgorithm.Bpe) _bpe = new SentencePieceBpe(model);
        else _unigram = MlSentencePiece.Create(model);
    }

    public SentencePieceModel Model => _model;

    public void Encode(string chunk, bool atTextStart, List<int> ids) => EncodeNormalized(_normalizer.Normalize(chunk), ids);

    /// <summary>Segments text that is already normalized (tokenizer.json runs its own normalizer chain first).</summary>
    public void EncodeNormalized(string normalized, List<int> ids)
    {
        if (normalized.Length == 0) return;
        if (_bpe != null)
        {
            AppendWithUnknownRules(_bpe.Segment(normalized).Select(p => (p, _model.PieceToId(p))), ids);
            return;
        }
        IReadOnlyList<int> found;
        try
        {
            found = _unigram!.EncodeToIds(normalized, addBeginningOfSentence: false, addEndOfSentence: false,
                considerPreTokenization: false, considerNormalization: false);
        }
        // Microsoft.ML.Tokenizers indexes its tables with values from the model unchecked; a corrupt model that our
        // reader accepts can still fail there (found by fuzzing: a byte removed inside a real T5 spiece.model).
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            throw new PeftOnnxException($"the sentencepiece model's data is inconsistent: Microsoft.ML.Tokenizers failed to encode {normalized.Length} characters ({e.GetType().Name})");
        }
        // ML returns one unk id per unknown character; sentencepiece reports a run of them as one piece.
        bool previousUnknown = false;
        foreach (int id in found)
        {
            bool unknown = id == _model.UnkId;
            if (!(unknown && previousUnknown)) ids.Add(id);
            previousUnknown = unknown;
        }
    }

    private void AppendWithUnknownRules(IEnumerable<(string Piece, int Id)> pieces, List<int> ids)
    {
        bool previousUnknown = false;
        foreach (var (piece, id) in pieces)
        {
            bool unknown = _model.TypeOf(id) == SentencePieceType.Unknown;
            if (unknown && _model.ByteFallback)
            {
                foreach (byte b in Encoding.UTF8.GetBytes(piece)) ids.Add(_model.PieceToId($"<0x{b:X2}>"));
            }
            else if (!(unknown && previousUnknown)) ids.Add(id);
            previousUnknown = unknown;
        }
    }
}
