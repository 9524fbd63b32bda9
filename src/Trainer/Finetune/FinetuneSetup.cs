using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Trainer.Finetune;

/// <summary>The adapter options the CLI offers per method (unset = PEFT's defaults).</summary>
public sealed record MethodOptions
{
    public int? R { get; init; }
    public double? LoraAlpha { get; init; }
    public double? LoraDropout { get; init; }
    public IReadOnlyList<string>? TargetModules { get; init; }
    public int? NumVirtualTokens { get; init; }
    public string? PromptInitText { get; init; }
    public int? EncoderHiddenSize { get; init; }
    public bool PrefixProjection { get; init; }
    public bool UseDora { get; init; }
    public bool LoraBias { get; init; }
    public IReadOnlyList<string>? ExcludeModules { get; init; }

    /// <summary>LoHa / LoKr: the scale numerator (PEFT's alpha; the scale is alpha / r).</summary>
    public double? Alpha { get; init; }

    /// <summary>LoKr: also split w1 into a rank-r product.</summary>
    public bool DecomposeBoth { get; init; }

    /// <summary>LoKr: the largest factor of the Kronecker split (-1: the most balanced one).</summary>
    public int? DecomposeFactor { get; init; }

    /// <summary>VeRA: lambda_d's initial value.</summary>
    public double? DInitial { get; init; }

    /// <summary>VeRA: the seed of the shared projections.</summary>
    public long? ProjectionPrngKey { get; init; }

    /// <summary>AdaLoRA: the rank every target starts with.</summary>
    public int? InitR { get; init; }

    /// <summary>AdaLoRA: the average rank update_and_allocate prunes to; only init_r is supported (no re-allocation).</summary>
    public int? TargetR { get; init; }

    /// <summary>AdaLoRA: the weight of the orthogonal regulariser in the loss.</summary>
    public double? OrthRegWeight { get; init; }
    /// <summary>OFT: the side of each rotation block (PEFT's oft_block_size; 32 when neither it nor --r is given).</summary>
    public int? OftBlockSize { get; init; }

    /// <summary>HRA: orthonormalise the reflection vectors (Gram-Schmidt) first.</summary>
    public bool ApplyGs { get; init; }

    /// <summary>BOFT: the side of each block (PEFT's boft_block_size; 4 when neither it nor the block count is given).</summary>
    public int? BoftBlockSize { get; init; }

    /// <summary>BOFT: blocks per layer (PEFT's boft_block_num).</summary>
    public int? BoftBlockNum { get; init; }

    /// <summary>BOFT: butterfly factors (PEFT's boft_n_butterfly_factor, 1 by default).</summary>
    public int? BoftNButterflyFactor { get; init; }

    /// <summary>FourierFT: spectrum entries per layer (PEFT's n_frequency, 1000 by default).</summary>
    public int? NFrequency { get; init; }

    /// <summary>FourierFT: the delta's scale (PEFT's scaling, 150 by default).</summary>
    public double? Scaling { get; init; }

    /// <summary>FourierFT: the seed of the spectrum positions (PEFT's random_loc_seed, 777 by default).</summary>
    public long? RandomLocSeed { get; init; }
}

/// <summary>Builds what a run needs from files: the adapter config for --method, the splits, the tokenized examples.</summary>
public static class FinetuneSetup
{
    public static readonly string[] Methods = ["lora", "ia3", "prompt_tuning", "p_tuning", "prefix_tuning", "loha", "lokr", "vera", "adalora", "oft", "hra", "fourierft", "boft"];

    /// <summary>PEFT's AdaLoraConfig init_r default.</summary>
    private const int AdaLoraDefaultRank = 12;

    /// <summary>Default number of virtual tokens of the prompt methods when neither --num-virtual-tokens nor an init text sets it.</summary>
    public const int DefaultVirtualTokens = 20;

    /// <summary>A new adapter config as PEFT's LoraConfig(...) etc. with the given options; task_type from the base model.</summary>
    /// <remarks>
    /// Prefix tuning on a model whose attention width (heads x head_dim) differs from its hidden size (this T5: 4 x 32
    /// vs d_model 256) gets token_dim = heads x head_dim and num_attention_heads = heads, as BASELINES.md's run passed
    /// explicitly: PEFT 0.7.1's default (token_dim = d_model) does not fit such a model's cache.
    /// </remarks>
    public static AdapterConfig ConfigFor(string method, MethodOptions o, TaskKind task, string baseDir, HfTokenizer tokenizer, ModelDimensions? dims = null)
    {
        var taskType = task == TaskKind.Seq2SeqLm ? AdapterConfig.Seq2SeqLm : AdapterConfig.CausalLm;
        // "all-linear" is PEFT's shorthand string, resolved when the adapter attaches; anything else is a list of names
        var targets = o.TargetModules is [var only] && only.Equals(InjectedAdapterConfig.AllLinear, StringComparison.OrdinalIgnoreCase)
            ? TargetModules.FromPattern(only)
            : o.TargetModules is { Count: > 0 } t ? TargetModules.FromNames(t) : null;
        Reject(method != "lora" && o.UseDora, "--use-dora");
        Reject(method != "lora" && o.LoraBias, "--lora-bias");
        Reject(method != "lora" && o.ExcludeModules is not null, "--exclude-modules");
        void Reject(bool given, string option)
        {
            if (given) throw new PeftOnnxException($"{option} does not apply to --method {method}");
        }
        bool prompt = method is "prompt_tuning" or "p_tuning" or "prefix_tuning";
        if (prompt)
        {
            Reject(o.R is not null, "--r");
            Reject(o.LoraAlpha is not null, "--lora-alpha");
            Reject(o.LoraDropout is not null, "--lora-dropout");
            Reject(targets is not null, "--target-modules");
        }
        else
        {
            Reject(o.NumVirtualTokens is not null, "--num-virtual-tokens");
            Reject(o.PromptInitText is not null, "--prompt-init-text");
            Reject(o.EncoderHiddenSize is not null, "--encoder-hidden-size");
            Reject(o.PrefixProjection, "--prefix-projection");
        }
        Reject(method != "prompt_tuning" && o.PromptInitText is not null, "--prompt-init-text");
        Reject(method != "prefix_tuning" && o.PrefixProjection, "--prefix-projection");
        Reject(method is not ("loha" or "lokr") && o.Alpha is not null, "--alpha");
        Reject(method != "lokr" && o.DecomposeBoth, "--decompose-both");
        Reject(method != "lokr" && o.DecomposeFactor is not null, "--decompose-factor");
        Reject(method is "loha" or "lokr" && o.LoraAlpha is not null, "--lora-alpha (use --alpha)");
        Reject(method is "loha" or "lokr" && o.LoraDropout is not null, "--lora-dropout");
        Reject(method != "vera" && o.DInitial is not null, "--d-initial");
        Reject(method != "vera" && o.ProjectionPrngKey is not null, "--projection-prng-key");
        Reject(method != "adalora" && o.InitR is not null, "--init-r");
        Reject(method != "adalora" && o.TargetR is not null, "--target-r");
        Reject(method != "adalora" && o.OrthRegWeight is not null, "--orth-reg-weight");
        Reject(method == "vera" && (o.LoraAlpha is not null || o.LoraDropout is not null), "--lora-alpha / --lora-dropout");
        Reject(method == "adalora" && o.R is not null, "--r (use --init-r)");
        Reject(method == "adalora" && o.LoraDropout is not null, "--lora-dropout");
        if (method == "adalora" && o.TargetR is { } targetR && targetR != (o.InitR ?? AdaLoraDefaultRank))
            throw new PeftOnnxException($"--target-r {targetR} differs from --init-r {o.InitR ?? AdaLoraDefaultRank}: AdaLoRA's rank re-allocation (update_and_allocate) is not implemented by train --data (give --target-r equal to --init-r, or leave it out)");
        Reject(method != "oft" && o.OftBlockSize is not null, "--oft-block-size");
        Reject(method != "hra" && o.ApplyGs, "--apply-gs");
        Reject(method is "oft" or "hra" or "fourierft" or "boft" && o.LoraAlpha is not null, "--lora-alpha");
        Reject(method is "oft" or "hra" or "fourierft" or "boft" && o.LoraDropout is not null, "--lora-dropout");
        Reject(method == "boft" && o.R is not null, "--r (use --boft-block-num)");
        Reject(method != "boft" && o.BoftBlockSize is not null, "--boft-block-size");
        Reject(method != "boft" && o.BoftBlockNum is not null, "--boft-block-num");
        Reject(method != "boft" && o.BoftNButterflyFactor is not null, "--boft-n-butterfly-factor");
        if (method == "boft" && o.BoftBlockSize is not null && o.BoftBlockNum is not null)
            throw new PeftOnnxException("--boft-block-size and --boft-block-num exclude each other for --method boft (give the block size or the block count)");
        Reject(method == "fourierft" && o.R is not null, "--r (use --n-frequency)");
        Reject(method != "fourierft" && o.NFrequency is not null, "--n-frequency");
        Reject(method != "fourierft" && o.Scaling is not null, "--scaling");
        Reject(method != "fourierft" && o.RandomLocSeed is not null, "--random-loc-seed");
        if (method == "oft" && o.R is not null && o.OftBlockSize is not null)
            throw new PeftOnnxException("--r and --oft-block-size exclude each other for --method oft (give the block count or the block size)");
        if (o.NumVirtualTokens is < 1) throw new PeftOnnxException($"--num-virtual-tokens {o.NumVirtualTokens} must be >= 1");
        AdapterConfig config = method switch
        {
            "lora" => Lora(o, targets, taskType),
            "ia3" => Ia3(o, targets, taskType),
            "loha" => new LoHaConfig { R = o.R ?? 8, Alpha = o.Alpha ?? 8, TargetModules = targets, TaskType = taskType },
            "lokr" => new LoKrConfig
            {
                R = o.R ?? 8, Alpha = o.Alpha ?? 8, DecomposeBoth = o.DecomposeBoth, DecomposeFactor = o.DecomposeFactor ?? -1,
                TargetModules = targets, TaskType = taskType,
            },
            "vera" => new VeraConfig
            {
                R = o.R ?? 256, DInitial = o.DInitial ?? 0.1, ProjectionPrngKey = o.ProjectionPrngKey ?? 0, TargetModules = targets, TaskType = taskType,
            },
            "adalora" => new AdaLoraConfig
            {
                InitR = o.InitR ?? AdaLoraDefaultRank, TargetR = o.InitR ?? AdaLoraDefaultRank, LoraAlpha = o.LoraAlpha ?? 8,
                OrthRegWeight = o.OrthRegWeight ?? 0.5, TargetModules = targets, TaskType = taskType,
            },
            "oft" => new OftConfig { R = o.R ?? 0, OftBlockSize = o.R is null ? o.OftBlockSize ?? 32 : 0, TargetModules = targets, TaskType = taskType },
            "fourierft" => new FourierFtConfig
            {
                NFrequency = o.NFrequency ?? 1000, Scaling = o.Scaling ?? 150.0, RandomLocSeed = o.RandomLocSeed ?? 777, TargetModules = targets, TaskType = taskType,
            },
            "boft" => new BoftConfig
            {
                BoftBlockSize = o.BoftBlockNum is null ? o.BoftBlockSize ?? 4 : 0, BoftBlockNum = o.BoftBlockNum ?? 0,
                BoftNButterflyFactor = o.BoftNButterflyFactor ?? 1, TargetModules = targets, TaskType = taskType,
            },
            "hra" => new HraConfig { R = o.R ?? 8, ApplyGs = o.ApplyGs, TargetModules = targets, TaskType = taskType },
            "prompt_tuning" => PromptTuning(o, taskType, baseDir, tokenizer),
            "p_tuning" => new PromptEncoderConfig
            {
                NumVirtualTokens = o.NumVirtualTokens ?? DefaultVirtualTokens, EncoderHiddenSize = o.EncoderHiddenSize, TaskType = taskType,
            },
            "prefix_tuning" => new PrefixTuningConfig
            {
                NumVirtualTokens = o.NumVirtualTokens ?? DefaultVirtualTokens, PrefixProjection = o.PrefixProjection,
                EncoderHiddenSize = o.EncoderHiddenSize, TaskType = taskType,
                TokenDim = dims is { } d && d.NumHeads * d.HeadDim != d.HiddenSize ? d.NumHeads * d.HeadDim : null,
                NumAttentionHeads = dims is { } h && h.NumHeads * h.HeadDim != h.HiddenSize ? h.NumHeads : null,
            },
            _ => throw new PeftOnnxException($"--method '{method}' is not one of {string.Join(", ", Methods)}"),
        };
        return config with { BaseModelNameOrPath = Path.GetFullPath(baseDir), InferenceMode = false };
    }

    /// <summary>LoraConfig(...); the keys of newer PEFT are written only when their option is given, so a plain LoRA config stays as before.</summary>
    private static LoraConfig Lora(MethodOptions o, TargetModules? targets, string taskType)
    {
        var config = new LoraConfig { R = o.R ?? 8, LoraAlpha = o.LoraAlpha ?? 8, LoraDropout = o.LoraDropout ?? 0, TargetModules = targets, TaskType = taskType };
        if (o.UseDora) config = config with { UsesDora = true };
        if (o.LoraBias) config = config with { HasLoraBias = true };
        if (o.ExcludeModules is { Count: > 0 } excluded) config = config with { ExcludedModules = TargetModules.FromNames(excluded) };
        return config;
    }

    private static AdapterConfig Ia3(MethodOptions o, TargetModules? targets, string taskType)
    {
        if (o.R is not null || o.LoraAlpha is not null || o.LoraDropout is not null)
            throw new PeftOnnxException("--r, --lora-alpha and --lora-dropout apply to --method lora only");
        return new Ia3Config { TargetModules = targets, TaskType = taskType };
    }

    private static AdapterConfig PromptTuning(MethodOptions o, string taskType, string baseDir, HfTokenizer tokenizer)
    {
        if (o.EncoderHiddenSize is not null || o.PrefixProjection)
            throw new PeftOnnxException("--encoder-hidden-size and --prefix-projection do not apply to --method prompt_tuning");
        if (o.PromptInitText is null)
            return new PromptTuningConfig { NumVirtualTokens = o.NumVirtualTokens ?? DefaultVirtualTokens, TaskType = taskType };
        if (o.PromptInitText.Length == 0) throw new PeftOnnxException("--prompt-init-text is empty");
        return new PromptTuningConfig
        {
            // As the PEFT guides: num_virtual_tokens = the number of tokens of the init text.
            NumVirtualTokens = o.NumVirtualTokens ?? tokenizer.Encode(o.PromptInitText).Count,
            PromptTuningInit = PromptTuningConfig.Text,
            PromptTuningInitText = o.PromptInitText,
            TokenizerNameOrPath = Path.GetFullPath(baseDir),
            TaskType = taskType,
        };
    }

    /// <summary>
    /// datasets' train_test_split(test_size=fraction) with our seeded permutation: ceil(fraction * n) rows go to
    /// validation (the first of the permutation), the rest to training.
    /// </summary>
    public static (DataTable Train, DataTable Validation) Split(DataTable table, double fraction, long seed)
    {
        if (!(fraction > 0 && fraction < 1)) throw new PeftOnnxException($"--validation-split {fraction} must be between 0 and 1 (e.g. 0.1)");
        int n = table.Count;
        int test = (int)Math.Ceiling(fraction * n);
        if (test < 1 || test >= n)
            throw new PeftOnnxException($"{table.Source}: --validation-split {fraction} of {n} rows leaves {n - test} for training and {test} for validation (need at least 1 each)");
        var order = SeededRandom.FromSeed(seed).Permutation(n);
        return (table.Select(order.Skip(test)), table.Select(order.Take(test)));
    }

    /// <summary>Tokenizes both splits and works out the label set and the generation budget.</summary>
    public static FinetuneData Prepare(DataTable train, DataTable validation, string textColumn, string labelColumn, ExampleBuilder builder)
    {
        // Resolve columns first: a missing column is reported with the columns there are, before any tokenizing.
        train.ColumnIndex(textColumn); train.ColumnIndex(labelColumn);
        validation.ColumnIndex(textColumn); validation.ColumnIndex(labelColumn);
        var trainExamples = builder.BuildAll(train, textColumn, labelColumn);
        var validationExamples = builder.BuildAll(validation, textColumn, labelColumn);
        var labels = trainExamples.Select(e => e.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var known = labels.ToHashSet(StringComparer.Ordinal);
        int unknown = validationExamples.Count(e => !known.Contains(e.Label));
        // Longest label in tokens, + 1 for eos (the target ids already end with it).
        int maxNew = trainExamples.Concat(validationExamples).Max(e => builder.TargetIds(e.Label).Length);
        return new FinetuneData(trainExamples, validationExamples, builder.Task, builder.Ids, labels, maxNew, unknown);
    }

    /// <summary>Validation labels that never occur in training (each listed once), for a warning.</summary>
    public static IReadOnlyList<string> UnknownLabels(FinetuneData data)
    {
        var known = data.LabelSet.ToHashSet(StringComparer.Ordinal);
        return data.Validation.Select(e => e.Label).Where(l => !known.Contains(l)).Distinct(StringComparer.Ordinal).ToList();
    }
}
