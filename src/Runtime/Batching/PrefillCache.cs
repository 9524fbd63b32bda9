using Microsoft.ML.OnnxRuntime;

namespace Peft.Onnx.Runtime.Batching;

/// <summary>
/// The cache of one prefill run shared by the rows it prefilled until they are copied into the batch: freed when the
/// last of them was copied or left.
/// </summary>
internal sealed class PrefillCache(OrtValue[] past, long[] mask, int length, int users)
{
    private int _users = users;

    /// <summary>past_key_values per layer, [rows, heads, lead + length, head_dim].</summary>
    public OrtValue[] Past { get; } = past;

    /// <summary>Per row the 0/1 mask over its <see cref="Length"/> positions.</summary>
    public long[] Mask { get; } = mask;

    public int Length { get; } = length;

    /// <summary>One row no longer needs the cache; the last one frees it.</summary>
    public void Release()
    {
        if (--_users > 0) return;
        foreach (var p in Past.Distinct()) p.Dispose();
    }
}
