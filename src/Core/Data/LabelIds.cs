namespace Peft.Onnx.Core.Data;

/// <summary>Label values with a meaning of their own.</summary>
public static class LabelIds
{
    /// <summary>A position no loss is computed on (torch's CrossEntropyLoss ignore_index, which transformers uses).</summary>
    public const long Ignore = -100;
}
