using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Runtime.Adapters;

/// <summary>A stack copied into the next adapter state, grown or with one slot changed.</summary>
internal static class StackGrowth
{
    /// <summary>
    /// <paramref name="old"/> with <paramref name="slots"/> adapter slots (+ the base slot, neutral), the old slots'
    /// values kept where they were (LoRA ranks re-padded with zeros when the new row's rank is larger), and slot
    /// <paramref name="slot"/> reset to neutral and filled with <paramref name="row"/> when given.
    /// </summary>
    public static StackBuffer Grow(StackBuffer old, AdapterStackKind kind, int slots, int oldSlots, int slot, StackRow? row)
    {
        var d = old.Dims;
        float neutral = AdapterStackNames.Neutral(kind);
        switch (kind)
        {
            case AdapterStackKind.LoraA:
            {
                // [slots + 1, in, r]
                long inF = d[1];
                int r = (int)d[2], rank = Math.Max(r, row?.Rank ?? 0);
                var values = new float[(slots + 1) * inF * rank];
                for (int k = 0; k < oldSlots; k++)
                {
                    if (k == slot) continue;
                    for (long i = 0; i < inF; i++)
                        Array.Copy(old.Values, (k * inF + i) * r, values, (k * inF + i) * rank, r);
                }
                if (row != null)
                    for (long i = 0; i < inF; i++)
                        Array.Copy(row.Values, i * row.Rank, values, (slot * inF + i) * rank, row.Rank);
                return new StackBuffer(values, [slots + 1, inF, rank]);
            }
            case AdapterStackKind.LoraB:
            {
                // [slots + 1, r, out]
                long outF = d[2];
                int r = (int)d[1], rank = Math.Max(r, row?.Rank ?? 0);
                var values = new float[(slots + 1) * rank * outF];
                for (int k = 0; k < oldSlots; k++)
                    if (k != slot) Array.Copy(old.Values, k * r * outF, values, k * rank * outF, r * outF);
                if (row != null) Array.Copy(row.Values, 0, values, slot * rank * outF, row.Rank * outF);
                return new StackBuffer(values, [slots + 1, rank, outF]);
            }
            default:
            {
                // [slots + 1, width]
                long width = d[1];
                var values = new float[(slots + 1) * width];
                Array.Fill(values, neutral);
                for (int k = 0; k < oldSlots; k++)
                    if (k != slot) Array.Copy(old.Values, k * width, values, k * width, width);
                row?.Values.CopyTo(values, slot * width);
                return new StackBuffer(values, [slots + 1, width]);
            }
        }
    }
}
