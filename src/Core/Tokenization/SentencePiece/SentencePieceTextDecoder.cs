using System.Buffers;
using System.Globalization;
using System.Text;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// sentencepiece's SentencePieceProcessor::Decode(pieces): control pieces vanish, "▁" becomes a space (one leading
/// "▁" is dropped while nothing has been written yet), runs of byte pieces are joined into UTF-8 with each invalid
/// byte shown as U+FFFD, and a string that is not a piece is copied as is.
/// </summary>
internal sealed class SentencePieceTextDecoder(SentencePieceModel model)
{
    public string Decode(IEnumerable<string> pieces)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        foreach (var piece in pieces)
        {
            int id = model.PieceToId(piece);
            var type = model.TypeOf(id);
            if (type == SentencePieceType.Byte && TryParseByte(piece, out byte b))
            {
                bytes.Add(b);
                continue;
            }
            FlushBytes(bytes, text);
            switch (type)
            {
                case SentencePieceType.Control:
                    break;
                case SentencePieceType.Unknown:
                    text.Append(piece == model.Pieces[model.UnkId].Text ? model.UnkSurface : piece);
                    break;
                default:
                    var surface = text.Length == 0 && piece.StartsWith('\u2581') ? piece[1..] : piece;
                    text.Append(surface.Replace('\u2581', ' '));
                    break;
            }
        }
        FlushBytes(bytes, text);
        return text.ToString();
    }

    private static void FlushBytes(List<byte> bytes, StringBuilder text)
    {
        if (bytes.Count == 0) return;
        ReadOnlySpan<byte> rest = bytes.ToArray();
        while (!rest.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(rest, out var rune, out int consumed) == OperationStatus.Done)
            {
                text.Append(rune.ToString());
                rest = rest[consumed..];
            }
            else
            {
                text.Append('\uFFFD');  // sentencepiece replaces each invalid byte on its own
                rest = rest[1..];
            }
        }
        bytes.Clear();
    }

    private static bool TryParseByte(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
               byte.TryParse(piece.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);
    }
}
