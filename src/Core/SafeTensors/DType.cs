namespace Peft.Onnx.Core.SafeTensors;

/// <summary>Element types of the safetensors format, spelled as in the header.</summary>
public enum DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL }

public static class DTypes
{
    public static int Size(this DType t) => t switch
    {
        DType.F64 or DType.I64 => 8,
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 or DType.I16 => 2,
        _ => 1,
    };

    public static bool TryParse(string s, out DType t) => Enum.TryParse(s, ignoreCase: false, out t) && Enum.IsDefined(t);
}
