using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Peft.Onnx.Core.SafeTensors;

/// <summary>Widening conversions from stored dtypes to the float32/int64 that compute uses.</summary>
public static class TensorConvert
{
    public static float[] ToFloat32(TensorEntry e, ReadOnlySpan<byte> bytes, string path)
    {
        var n = checked((int)e.ElementCount);
        var result = new float[n];
        switch (e.DType)
        {
            case DType.F32:
                bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
                break;
            case DType.F16:
                for (int i = 0; i < n; i++) result[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(2 * i)..]);
                break;
            case DType.BF16:
                for (int i = 0; i < n; i++) result[i] = BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]));
                break;
            case DType.F64:
                for (int i = 0; i < n; i++) result[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes[(8 * i)..]);
                break;
            default:
                throw new PeftOnnxException($"{path}: tensor '{e.Name}' has dtype {e.DType}, expected a floating-point type (F32, F16, BF16, F64)");
        }
        return result;
    }

    public static long[] ToInt64(TensorEntry e, ReadOnlySpan<byte> bytes, string path)
    {
        var n = checked((int)e.ElementCount);
        var result = new long[n];
        switch (e.DType)
        {
            case DType.I64:
                bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
                break;
            case DType.I32:
                for (int i = 0; i < n; i++) result[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]);
                break;
            case DType.I16:
                for (int i = 0; i < n; i++) result[i] = BinaryPrimitives.ReadInt16LittleEndian(bytes[(2 * i)..]);
                break;
            case DType.I8:
                for (int i = 0; i < n; i++) result[i] = (sbyte)bytes[i];
                break;
            case DType.U8:
            case DType.BOOL:
                for (int i = 0; i < n; i++) result[i] = bytes[i];
                break;
            default:
                throw new PeftOnnxException($"{path}: tensor '{e.Name}' has dtype {e.DType}, expected an integer type");
        }
        return result;
    }

    public static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Round-to-nearest-even, as torch does when casting to bfloat16.</summary>
    public static ushort SingleToBFloat16(float f)
    {
        uint bits = (uint)BitConverter.SingleToInt32Bits(f);
        if (float.IsNaN(f)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
