using Peft.Onnx.Core.Architectures;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// The module tree PEFT walks (model.named_modules()), rebuilt from an architecture's state-dict names and
/// linear modules, so placement and counting need no weights.
/// </summary>
internal static class ModuleNames
{
    /// <summary>
    /// Every module that owns parameters (directly or below it), parents before children, in state-dict order.
    /// Parameterless leaves (dropout, activations) are missing; PEFT cannot adapt or usefully save them anyway.
    /// </summary>
    public static IReadOnlyList<string> Of(Architecture arch)
    {
        var names = new List<string>();
        var seen = new HashSet<string>();
        void Add(string module)
        {
            var parts = module.Split('.');
            for (int i = 1; i <= parts.Length; i++)
            {
                var prefix = string.Join('.', parts, 0, i);
                if (seen.Add(prefix)) names.Add(prefix);
            }
        }
        foreach (var p in arch.Parameters)
        {
            var dot = p.Name.LastIndexOf('.');
            if (dot > 0) Add(p.Name[..dot]);
        }
        // A tied output head has no tensor of its own in the state dict but is still a module.
        foreach (var l in arch.Linears) Add(l.Path);
        return names;
    }

    /// <summary>
    /// Parameters a deep copy of the module holds (what modules_to_save adds): its state-dict tensors, plus the
    /// output head's weight when the head is tied (the copy gets its own).
    /// </summary>
    public static long ParameterCountUnder(Architecture arch, string module)
    {
        var prefix = module + ".";
        long count = arch.Parameters.Where(p => p.Name.StartsWith(prefix, StringComparison.Ordinal)).Sum(p => p.ElementCount);
        if (arch.HeadIsTied && arch.OutputHead.StartsWith(prefix, StringComparison.Ordinal)
            && arch.Linears.FirstOrDefault(l => l.WeightName == arch.OutputHead) is { } head)
            count += head.InFeatures * head.OutFeatures;
        return count;
    }
}
