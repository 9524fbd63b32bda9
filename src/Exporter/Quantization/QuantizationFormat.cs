using Peft.Onnx.Core;

namespace Peft.Onnx.Exporter.Quantization;

/// <summary>
/// How a weight is quantized for com.microsoft MatMulNBits: <paramref name="Bits"/> (8 or 4) per weight, one scale (and,
/// when not <paramref name="Symmetric"/>, one zero point) per <paramref name="BlockSize"/> consecutive inputs of an output.
/// </summary>
public sealed record QuantizationFormat(int Bits, int BlockSize = QuantizationFormat.DefaultBlockSize, bool Symmetric = true)
{
    /// <summary>int8's default block (the block ORT GenAI's model builder writes).</summary>
    public const int DefaultBlockSize = 32;

    /// <summary>
    /// An int4 export's default block (its int8 attention and head take it too): with int8 attention and head the main
    /// job (tiny-bloom-fin + LoRA, all 227 financial_phrasebank validation rows) keeps 0.963 top-1 agreement with the
    /// float32 adapted model at block 128 (0.967 at 32), and MLAS's kernels run a block of 128 fastest (see README).
    /// </summary>
    public const int DefaultInt4BlockSize = 128;

    /// <summary>The block a width gets when none is asked for: <see cref="DefaultInt4BlockSize"/> for 4 bits, else <see cref="DefaultBlockSize"/>.</summary>
    public static int DefaultBlockSizeFor(int bits) => bits == 4 ? DefaultInt4BlockSize : DefaultBlockSize;

    /// <summary>Largest code: 255 (8 bits) or 15 (4 bits).</summary>
    public int MaxCode => (1 << Bits) - 1;

    /// <summary>The code a symmetric block maps zero to (and MatMulNBits assumes without zero points): 128 or 8.</summary>
    public int MidCode => 1 << (Bits - 1);

    /// <summary>Bytes holding one block's codes.</summary>
    public int BlobBytes => BlockSize * Bits / 8;

    /// <summary>Blocks along an input dimension of <paramref name="k"/> (the last one zero-padded).</summary>
    public long BlockCount(long k) => (k + BlockSize - 1) / BlockSize;

    /// <summary>Bytes of one output's zero points: one per block (8 bits) or two blocks per byte, low nibble first (4 bits).</summary>
    public long ZeroPointBytes(long k) => Bits == 8 ? BlockCount(k) : (BlockCount(k) + 1) / 2;

    /// <summary>Throws a one-line error naming the bad value unless bits and block size are ones MatMulNBits takes.</summary>
    public QuantizationFormat Validated()
    {
        if (Bits is not (4 or 8)) throw new PeftOnnxException($"quantization bits {Bits} are not supported (expected 8 or 4: int8 or int4)");
        if (BlockSize < 16 || (BlockSize & (BlockSize - 1)) != 0)
            throw new PeftOnnxException($"block size {BlockSize} is not supported (expected a power of two of at least 16: 16, 32, 64, 128, ...)");
        return this;
    }
}
