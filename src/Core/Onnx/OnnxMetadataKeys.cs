namespace Peft.Onnx.Core.Onnx;

/// <summary>metadata_props an export writes beside the graph interface, read back by whoever runs it.</summary>
public static class OnnxMetadataKeys
{
    /// <summary>PEFT type of a baked prompt-learning adapter (PROMPT_TUNING, P_TUNING, PREFIX_TUNING).</summary>
    public const string PeftType = "peft.peft_type";

    /// <summary>Virtual tokens a baked adapter puts before every input (they take the first positions).</summary>
    public const string NumVirtualTokens = "peft.num_virtual_tokens";
}
