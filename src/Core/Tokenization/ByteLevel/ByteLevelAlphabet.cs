namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// GPT-2's bytes_to_unicode: every byte gets a printable character (printable Latin-1 bytes map to themselves, the
/// rest to U+0100 upwards, so ' ' is 'Ġ'). Byte-level BPE vocabularies are written in these characters.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] CharOfByte = BuildCharOfByte();
    private static readonly Dictionary<char, byte> ByteOfChar =
        Enumerable.Range(0, 256).ToDictionary(b => CharOfByte[b], b => (byte)b);

    public static char ToChar(byte b) => CharOfByte[b];

    public static bool TryGetByte(char c, out byte b) => ByteOfChar.TryGetValue(c, out b);

    private static char[] BuildCharOfByte()
    {
        var chars = new char[256];
        bool Printable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
        int next = 256;
        for (int b = 0; b < 256; b++) chars[b] = Printable(b) ? (char)b : (char)next++;
        return chars;
    }
}
