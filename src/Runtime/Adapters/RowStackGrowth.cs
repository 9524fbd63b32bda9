using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Runtime.Adapters;

/// <summary>
/// The row layout's LoRA stacks (<see cref="LoraStackLayout.Rows"/>) copied into the next adapter state: per index table,
/// its modules' A [rows, in] and B [rows, out] (row 0 zero) gain an added adapter's rows at their end, or lose a removed
/// adapter's rows at once (the later rows move up and the table is renumbered), and the table's slot row lists them. All
/// modules of one table keep the same rows per slot (the table is shared), so a module the adapter does not target, or
/// targets at a smaller rank than another module of the table, gets zero rows to keep them aligned (zeros add nothing).
/// </summary>
internal static class RowStackGrowth
{
    /// <summary>Whether <paramref name="kind"/>'s stacks of a <paramref name="layout"/> export are grown here (not by <see cref="StackGrowth"/>).</summary>
    public static bool Handles(LoraStackLayout layout, AdapterStackKind kind) =>
        layout == LoraStackLayout.Rows && kind is AdapterStackKind.LoraA or AdapterStackKind.LoraB or AdapterStackKind.LoraRows;

    /// <summary>
    /// A row-layout stack's dims as a slot axis then one slot's row shape (A: [slots, in, rank], B: [slots, rank, out]),
    /// the shapes an added adapter's rows are checked against; other stacks' dims as they are.
    /// </summary>
    public static long[] SlotDims(LoraStackLayout layout, AdapterStackKind kind, long[] dims, int slots) =>
        layout != LoraStackLayout.Rows ? dims : kind switch
        {
            AdapterStackKind.LoraA => [slots + 1, dims[1], dims[0] - 1],
            AdapterStackKind.LoraB => [slots + 1, dims[0] - 1, dims[1]],
            _ => dims,
        };

    /// <summary>
    /// Adds slot <paramref name="slot"/> (free, or new at <paramref name="oldSlots"/>) with <paramref name="rows"/>' LoRA
    /// rows (A transposed [in, r], B^T [r, out], by stack name) into <paramref name="next"/>, from <paramref name="old"/>.
    /// </summary>
    public static void Add(Dictionary<string, StackBuffer> next, IReadOnlyDictionary<string, StackBuffer> old,
        IReadOnlyDictionary<string, IReadOnlyList<string>> tables, int slots, int oldSlots, int slot, IReadOnlyDictionary<string, StackRow> rows)
    {
        foreach (var (tableName, users) in tables)
        {
            var table = old[tableName];
            int width = checked((int)table.Dims[1]);
            StackRow? Row(string module, AdapterStackKind kind) => rows.GetValueOrDefault(AdapterStackNames.Name(module, kind));
            int rank = users.Max(u => Row(u, AdapterStackKind.LoraA)?.Rank ?? 0);
            long first = old[AdapterStackNames.Name(users[0], AdapterStackKind.LoraA)].Dims[0];
            int newWidth = Math.Max(width, rank);
            var values = new float[(slots + 1) * newWidth];
            for (int k = 0; k < oldSlots; k++)
                if (k != slot) Array.Copy(table.Values, k * width, values, k * newWidth, width);
            for (int j = 0; j < rank; j++) values[slot * newWidth + j] = first + j;
            next[tableName] = new StackBuffer(values, [slots + 1, newWidth]);
            foreach (var user in users)
            {
                var a = old[AdapterStackNames.Name(user, AdapterStackKind.LoraA)];
                var b = old[AdapterStackNames.Name(user, AdapterStackKind.LoraB)];
                next[AdapterStackNames.Name(user, AdapterStackKind.LoraA)] = Append(a, Row(user, AdapterStackKind.LoraA), rank, transposed: true);
                next[AdapterStackNames.Name(user, AdapterStackKind.LoraB)] = Append(b, Row(user, AdapterStackKind.LoraB), rank, transposed: false);
            }
        }
    }

    /// <summary>Drops slot <paramref name="slot"/>'s rows from every table's modules into <paramref name="next"/>, from <paramref name="old"/>.</summary>
    public static void Remove(Dictionary<string, StackBuffer> next, IReadOnlyDictionary<string, StackBuffer> old,
        IReadOnlyDictionary<string, IReadOnlyList<string>> tables, int slot)
    {
        foreach (var (tableName, users) in tables)
        {
            var table = old[tableName];
            int slotRows = checked((int)table.Dims[0]), width = checked((int)table.Dims[1]);
            var dropped = new SortedSet<long>();
            for (int j = 0; j < width; j++)
                if (table.Values[slot * width + j] is var e && e > 0) dropped.Add((long)e);
            // the rows left, renumbered: each index less the dropped rows before it
            long Renumber(long e) => e - dropped.GetViewBetween(0, e).Count;
            int newWidth = 1;
            for (int k = 0; k < slotRows; k++)
                if (k != slot) newWidth = Math.Max(newWidth, Enumerable.Range(0, width).Count(j => table.Values[k * width + j] > 0));
            var values = new float[slotRows * newWidth];
            for (int k = 0; k < slotRows; k++)
                if (k != slot)
                    for (int j = 0; j < Math.Min(width, newWidth); j++)
                        values[k * newWidth + j] = table.Values[k * width + j] is var e && e > 0 ? Renumber((long)e) : 0;
            next[tableName] = new StackBuffer(values, [slotRows, newWidth]);
            foreach (var user in users)
                foreach (var kind in new[] { AdapterStackKind.LoraA, AdapterStackKind.LoraB })
                {
                    var name = AdapterStackNames.Name(user, kind);
                    next[name] = Drop(old[name], dropped);
                }
        }
    }

    /// <summary>
    /// <paramref name="stack"/> [rows, width] with <paramref name="count"/> rows appended: <paramref name="row"/>'s (its
    /// rank's worth; A given transposed [width, r]) then zeros.
    /// </summary>
    private static StackBuffer Append(StackBuffer stack, StackRow? row, int count, bool transposed)
    {
        long rows = stack.Dims[0], width = stack.Dims[1];
        var values = new float[(rows + count) * width];
        Array.Copy(stack.Values, values, stack.Values.Length);
        if (row != null)
        {
            int r = row.Rank;
            for (int j = 0; j < r; j++)
                for (long i = 0; i < width; i++)
                    values[(rows + j) * width + i] = transposed ? row.Values[i * r + j] : row.Values[j * width + i];
        }
        return new StackBuffer(values, [rows + count, width]);
    }

    private static StackBuffer Drop(StackBuffer stack, SortedSet<long> dropped)
    {
        long rows = stack.Dims[0], width = stack.Dims[1];
        var values = new float[(rows - dropped.Count) * width];
        long to = 0;
        for (long k = 0; k < rows; k++)
            if (!dropped.Contains(k)) Array.Copy(stack.Values, k * width, values, to++ * width, width);
        return new StackBuffer(values, [rows - dropped.Count, width]);
    }
}
