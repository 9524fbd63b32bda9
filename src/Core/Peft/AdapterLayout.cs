using Peft.Onnx.Core.Architectures;

namespace Peft.Onnx.Core.Peft;

/// <summary>
/// The tensors an adapter's file holds for one base model, as PEFT 0.7.1's get_peft_model_state_dict writes them:
/// those it must hold (adapter weights, modules_to_save copies, a prompt's rows) and those it may hold (LoRA's trained
/// biases with bias = "all", which PEFT's non-strict load takes when present). Anything else does not belong to it,
/// apart from the keys PEFT writes but never loads (<see cref="AdapterFormat.IsNeverLoaded"/>).
/// </summary>
public sealed record AdapterLayout(IReadOnlyList<ExpectedTensor> Required, IReadOnlyList<ExpectedTensor> Optional)
{
    /// <summary>The layout of <paramref name="prepared"/> (a config as attached: <see cref="AdapterConfig.PreparedFor"/>) on <paramref name="arch"/>.</summary>
    public static AdapterLayout For(AdapterConfig prepared, Architecture arch) => prepared switch
    {
        InjectedAdapterConfig injected => Injected(injected, arch),
        PromptLearningConfig prompt => new AdapterLayout([PromptRows(prompt)], []),
        _ => throw new PeftOnnxException($"{prepared.SourcePath}: peft_type '{prepared.PeftType}' has no known file layout"),
    };

    private static AdapterLayout Injected(InjectedAdapterConfig config, Architecture arch)
    {
        var placement = config.Place(arch);
        var required = new List<ExpectedTensor>();
        foreach (var t in placement.Targets)
        {
            var linear = t.Linear;
            if (config is LycorisConfig lycoris) required.AddRange(lycoris.ExpectedTensors(t));
            else if (config is VeraConfig vera) required.AddRange(vera.ExpectedTensors(t));
            else if (config is AdaLoraConfig adaLora) required.AddRange(adaLora.ExpectedTensors(t));
            else if (config is OftConfig oft) required.Add(oft.RotationTensor(t));
            else if (config is BoftConfig boft) required.AddRange(boft.ExpectedTensors(t));
            else if (config is HraConfig hra) required.Add(hra.VectorsTensor(t));
            else if (config is FourierFtConfig fourier) required.Add(fourier.SpectrumTensor(t));
            else if (config is LoraConfig lora)
            {
                var why = $"r = {t.Rank} on '{t.Path}'";
                required.Add(new(AdapterFormat.LoraAKey(t.Path), [t.Rank, linear.InFeatures], ExpectedTensor.BaseNeeds, $"LoRA A, {why}"));
                required.Add(new(AdapterFormat.LoraBKey(t.Path), [linear.OutFeatures, t.Rank], ExpectedTensor.BaseNeeds, $"LoRA B, {why}"));
                if (lora.HasLoraBias)
                    required.Add(new(AdapterFormat.LoraBBiasKey(t.Path), [linear.OutFeatures], ExpectedTensor.BaseNeeds, $"lora_B bias (lora_bias = true) of '{t.Path}', one per output"));
                if (lora.UsesDora)
                    required.Add(new(AdapterFormat.LoraMagnitudeKey(t.Path), [linear.OutFeatures], ExpectedTensor.BaseNeeds, $"DoRA magnitude (use_dora = true) of '{t.Path}', one per output"));
            }
            else
            {
                long[] shape = t.IsFeedforward ? [1, linear.InFeatures] : [linear.OutFeatures, 1];
                required.Add(new(AdapterFormat.Ia3Key(t.Path), shape, ExpectedTensor.BaseNeeds,
                    t.IsFeedforward ? $"IA3 input scale of feed-forward '{t.Path}'" : $"IA3 output scale of '{t.Path}'"));
            }
        }
        if (config is VeraConfig shared) required.AddRange(shared.SharedTensors(placement.Targets));
        foreach (var module in placement.ModulesToSave)
            foreach (var (name, shape) in TensorsUnder(arch, module))
                required.Add(new(AdapterFormat.BaseKey(name), shape, ExpectedTensor.BaseNeeds, $"'{name}', which modules_to_save copies ('{module}')"));

        var optional = new List<ExpectedTensor>();
        if (config is LoraConfig { Bias: "all" } or BoftConfig { Bias: "all" })
        {
            var wrapped = placement.Targets.Select(t => t.Path).ToHashSet(StringComparer.Ordinal);
            foreach (var p in arch.Parameters.Where(p => p.Name.Contains("bias", StringComparison.Ordinal)))
            {
                if (placement.ModulesToSave.Any(m => p.Name.StartsWith(m + ".", StringComparison.Ordinal))) continue;
                var dot = p.Name.LastIndexOf('.');
                var inWrapped = dot > 0 && wrapped.Contains(p.Name[..dot]);
                optional.Add(new(AdapterFormat.BaseKey(p.Name, inWrapped), p.Shape, ExpectedTensor.BaseNeeds, $"'{p.Name}', trained with bias = \"all\""));
            }
        }
        return new AdapterLayout(required, optional);
    }

    /// <summary>
    /// State-dict tensors below a module as a deep copy of it holds them: a tied output head gets its own weight
    /// (transformers' state dict leaves it out; the copy does not share it).
    /// </summary>
    private static IEnumerable<(string Name, long[] Shape)> TensorsUnder(Architecture arch, string module)
    {
        var prefix = module + ".";
        foreach (var p in arch.Parameters.Where(p => p.Name.StartsWith(prefix, StringComparison.Ordinal)))
            yield return (p.Name, p.Shape);
        if (arch.HeadIsTied && arch.OutputHead.StartsWith(prefix, StringComparison.Ordinal)
            && arch.Linears.FirstOrDefault(l => l.WeightName == arch.OutputHead) is { } head)
            yield return (head.WeightName, [head.OutFeatures, head.InFeatures]);
    }

    /// <summary>
    /// prompt_embeddings: [num_virtual_tokens, num_layers * 2 * token_dim] for a prefix (projection applied), else
    /// [num_virtual_tokens * num_transformer_submodules, token_dim]. Sizes in long: a config may state any int.
    /// </summary>
    private static ExpectedTensor PromptRows(PromptLearningConfig c)
    {
        long nv = c.NumVirtualTokens!.Value, dim = c.TokenDim!.Value;
        if (c is PrefixTuningConfig)
        {
            long layers = c.NumLayers!.Value;
            return new(AdapterFormat.PromptEmbeddings, [nv, layers * 2 * dim], ExpectedTensor.ConfigImplies,
                $"num_virtual_tokens {nv} x (num_layers {layers} x 2 x token_dim {dim})");
        }
        long sub = c.NumTransformerSubmodules!.Value;
        return new(AdapterFormat.PromptEmbeddings, [nv * sub, dim], ExpectedTensor.ConfigImplies,
            $"num_virtual_tokens {nv} x num_transformer_submodules {sub} rows of token_dim {dim}");
    }
}
