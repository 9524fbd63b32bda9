namespace Peft.Onnx.Exporter.Onnx;

/// <summary>ONNX tensor element types we emit; the values are TensorProto.DataType's.</summary>
public enum ElementType
{
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    Int32 = 6,
    Int64 = 7,
    Bool = 9,
    Float16 = 10,
    Double = 11,
    BFloat16 = 16,
}

public static class ElementTypes
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this ElementType t) => t switch
    {
        ElementType.Int64 or ElementType.Double => 8,
        ElementType.Float or ElementType.Int32 => 4,
        ElementType.Float16 or ElementType.BFloat16 => 2,
        ElementType.UInt8 or ElementType.Int8 or ElementType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown element type"),
    };

    /// <summary>Short lower-case name (f32, i64, ...) used in generated constant names.</summary>
    public static string ShortName(this ElementType t) => t switch
    {
        ElementType.Float => "f32",
        ElementType.UInt8 => "u8",
        ElementType.Int8 => "i8",
        ElementType.Int32 => "i32",
        ElementType.Int64 => "i64",
        ElementType.Bool => "bool",
        ElementType.Float16 => "f16",
        ElementType.Double => "f64",
        ElementType.BFloat16 => "bf16",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown element type"),
    };
}
