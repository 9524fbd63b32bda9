using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Runtime.Adapters;

namespace Peft.Onnx.Runtime;

/// <summary>
/// An exported folder loaded in ONNX Runtime: model.onnx (decoder-only) or encoder_model.onnx + decoder_model.onnx
/// (encoder-decoder), with config.json, generation_config.json and the tokenizer files beside them. One
/// InferenceSession per graph, created once and shared: every method is safe to call from many threads at once.
/// <code>
/// using var model = OnnxModel.Load("out/bloom-lora", DeviceOptions.Cpu);
/// var result = model.Generate(GenerationRequest.FromText("Hello", GenerationOptions.Greedy(20)));
/// Console.WriteLine(result.Text![0]);
/// </code>
/// </summary>
public sealed class OnnxModel : IDisposable
{
    private readonly Lazy<(HfTokenizer? Tokenizer, PeftOnnxException? Error)> _tokenizer;
    private readonly object _tokenizerLock = new();
    private OrtMemoryInfo? _cudaMemory;
    private readonly AdapterRegistry? _adapters;

    private OnnxModel(string dir, ModelConfig config, GenerationConfig generation, CausalLmGraph? causal, Seq2SeqGraph? seq2seq, Device device, int cudaDeviceId)
    {
        Directory = dir;
        Config = config;
        GenerationDefaults = generation;
        CausalLm = causal;
        Seq2Seq = seq2seq;
        Device = device;
        int graphVocab = causal?.VocabSize ?? seq2seq!.VocabSize;
        VocabSize = graphVocab > 0 ? graphVocab : config.Dimensions.VocabSize;
        NumLayers = causal?.NumLayers ?? seq2seq!.NumLayers;
        var manifest = AdapterManifest.Load(dir);
        if (manifest != null && (causal?.TakesAdapterIndex ?? seq2seq!.TakesAdapterIndex) != true)
            throw new PeftOnnxException($"{dir}: {AdapterManifest.FileName} names adapters but the graph has no '{CausalLmContract.AdapterIndex}' input");
        if (manifest != null) _adapters = new AdapterRegistry(dir, manifest, Architecture.For(config));
        (ContextLength, ContextKey) = (config.ContextWindow?.Positions, config.ContextWindow?.Key);
        if (device == Device.Cuda) _cudaMemory = new OrtMemoryInfo("Cuda", OrtAllocatorType.DeviceAllocator, cudaDeviceId, OrtMemType.Default);
        _tokenizer = new(() =>
        {
            try { return (HfTokenizer.FromFolder(dir), null); }
            catch (PeftOnnxException ex) { return (null, ex); }
        });
    }

    /// <summary>The folder the model was loaded from.</summary>
    public string Directory { get; }

    public ModelConfig Config { get; }

    /// <summary>generation_config.json (or the defaults transformers derives from config.json).</summary>
    public GenerationConfig GenerationDefaults { get; }

    /// <summary>Where the sessions run: <see cref="Runtime.Device.Cpu"/> or <see cref="Runtime.Device.Cuda"/> (never Auto).</summary>
    public Device Device { get; }

    /// <summary>"cpu" or "cuda".</summary>
    public string DeviceName => Device == Device.Cuda ? "cuda" : "cpu";

    public bool IsEncoderDecoder => Seq2Seq != null;

    /// <summary>
    /// The adapters a multi-adapter export holds now, in slot order (the exported ones, then those added at run time;
    /// empty for other exports); a request picks one by name.
    /// </summary>
    public IReadOnlyList<string> Adapters => _adapters?.Names ?? [];

    /// <summary>
    /// Adds a LoRA (lora_bias, DoRA included), IA3 or prefix-tuning adapter from a PEFT folder to a multi-adapter export at
    /// run time, without re-export: requests may name it from now on, requests in flight are untouched. Its targets must
    /// have stacks in the export (a module some exported adapter of that kind targets; for prefix tuning, an exported
    /// prompt-learning adapter); the adapter is checked against the base first, and a refused adapter leaves the model unchanged.
    /// </summary>
    public void AddAdapter(string name, string peftFolder)
    {
        if (_adapters == null)
            throw new PeftOnnxException($"AddAdapter {name}: {Directory} is not a multi-adapter export (no {AdapterManifest.FileName}), so its graph has no adapter stacks to extend: export it with --adapter NAME=DIR (an adapter that targets the modules later adapters will)");
        if (IsEncoderDecoder)
            throw new PeftOnnxException($"AddAdapter {name}: {Directory} is an encoder-decoder export; adapters are added at run time to decoder-only multi-adapter exports so far (export it with --adapter {name}=DIR)");
        _adapters.Add(name, peftFolder);
    }

    /// <summary>
    /// Removes an adapter (exported or added): new requests naming it are refused as unknown; requests already running
    /// with it finish with it (they hold the adapter state they started with).
    /// </summary>
    public void RemoveAdapter(string name)
    {
        if (_adapters == null)
            throw new PeftOnnxException($"unknown adapter '{name}' ({Directory} holds no named adapters: export with --adapter NAME=DIR)");
        if (IsEncoderDecoder)
            throw new PeftOnnxException($"RemoveAdapter {name}: {Directory} is an encoder-decoder export; adapters are removed at run time from decoder-only multi-adapter exports so far");
        _adapters.Remove(name);
    }

    /// <summary>
    /// Per row the <see cref="CausalLmContract.AdapterIndex"/> value for the adapter names (null = the base); null when
    /// every row runs the base. An unknown name is refused, listing the known ones.
    /// </summary>
    internal long[]? AdapterIndices(IReadOnlyList<string?> names)
    {
        if (names.All(n => n == null)) return null;
        using var lease = LeaseAdapters(names);
        return AdapterIndices(names, lease);
    }

    private static long[]? AdapterIndices(IReadOnlyList<string?> names, AdapterLease? lease) =>
        lease == null || names.All(n => n == null) ? null : names.Select(lease.Slots.IndexOf).ToArray();

    /// <summary>The adapter state a generation starts with; null when it needs none (every row on the base of a model without run-time changes).</summary>
    private AdapterLease? LeaseAdapters(IReadOnlyList<string?> names)
    {
        if (_adapters == null)
        {
            if (names.FirstOrDefault(n => n != null) is { } name)
                throw new PeftOnnxException($"unknown adapter '{name}' ({Directory} holds no named adapters: export with --adapter NAME=DIR)");
            return null;
        }
        return _adapters.Lease();
    }

    /// <summary>
    /// The most virtual tokens a row of <paramref name="names"/> gets from its adapter of a multi-adapter export (prompt
    /// tuning, p-tuning, prefix tuning), which take that row's first positions.
    /// </summary>
    private int RowVirtualTokens(IReadOnlyList<string?> names)
    {
        if (_adapters == null) return 0;
        return names.Where(n => n != null).Select(n => _adapters.VirtualTokens(n!)).DefaultIfEmpty(0).Max();
    }

    public int VocabSize { get; }
    public int NumLayers { get; }

    /// <summary>Most positions the model was trained for (n_positions / max_position_embeddings), null when the family has no limit.</summary>
    public int? ContextLength { get; }
    private string? ContextKey { get; }

    internal CausalLmGraph? CausalLm { get; }
    internal Seq2SeqGraph? Seq2Seq { get; }
    internal OrtMemoryInfo CacheMemory => _cudaMemory ?? OrtMemoryInfo.DefaultInstance;

    internal int DecoderStartTokenId =>
        GenerationDefaults.DecoderStartTokenId ?? Config.DecoderStartId;

    /// <summary>True when the folder holds tokenizer files that load.</summary>
    public bool HasTokenizer => _tokenizer.Value.Tokenizer != null;

    /// <summary>The folder's tokenizer; throws <see cref="PeftOnnxException"/> when it has none.</summary>
    public HfTokenizer Tokenizer => _tokenizer.Value.Tokenizer ?? throw _tokenizer.Value.Error!;

    /// <summary>transformers' tokenizer(text)["input_ids"] with the folder's tokenizer.</summary>
    public int[] Encode(string text)
    {
        var tokenizer = Tokenizer;
        lock (_tokenizerLock) return tokenizer.Encode(text).ToArray();
    }

    /// <summary>
    /// tokenizer(text, add_special_tokens=...)["input_ids"] with the folder's tokenizer: without special tokens for a
    /// rendered chat template, which writes them itself.
    /// </summary>
    public int[] Encode(string text, bool addSpecialTokens)
    {
        var tokenizer = Tokenizer;
        lock (_tokenizerLock) return tokenizer.Encode(text, addSpecialTokens).ToArray();
    }

    /// <summary>
    /// transformers' tokenizer.decode(ids, skip_special_tokens=True) with the folder's tokenizer; ids past the
    /// tokenizer's vocabulary (graphs whose embedding is padded beyond it) are skipped.
    /// </summary>
    public string Decode(IEnumerable<int> ids)
    {
        var tokenizer = Tokenizer;
        var known = ids.Where(i => i >= 0 && i < tokenizer.VocabSize).ToArray();
        lock (_tokenizerLock) return tokenizer.Decode(known);
    }

    /// <summary>
    /// Loads the exported folder <paramref name="dir"/> on <paramref name="device"/> (default: auto, which prints its
    /// choice on standard error). Throws <see cref="PeftOnnxException"/> when a file is missing or CUDA was asked for
    /// and cannot start.
    /// </summary>
    public static OnnxModel Load(string dir, DeviceOptions? device = null)
    {
        device ??= DeviceOptions.Auto;
        if (!System.IO.Directory.Exists(dir)) throw new PeftOnnxException($"{dir}: folder not found (expected an exported ONNX folder)");
        dir = Path.GetFullPath(dir);
        bool causal = File.Exists(Path.Combine(dir, CausalLmContract.ModelFile));
        bool encoder = File.Exists(Path.Combine(dir, Seq2SeqContract.EncoderFile));
        bool decoder = File.Exists(Path.Combine(dir, Seq2SeqContract.DecoderFile));
        if (!causal && !(encoder && decoder))
        {
            var missing = encoder ? Seq2SeqContract.DecoderFile : decoder ? Seq2SeqContract.EncoderFile
                : $"{CausalLmContract.ModelFile} (or {Seq2SeqContract.EncoderFile} + {Seq2SeqContract.DecoderFile})";
            throw new PeftOnnxException($"{dir}: {missing} not found (expected a folder written by peft-onnx export)");
        }
        var config = ModelConfig.Load(dir);
        var generation = Merge(GenerationConfig.TryLoad(dir), config);

        switch (device.Device)
        {
            case Device.Cpu:
                return Create(dir, config, generation, causal, Device.Cpu, device);
            case Device.Cuda:
                if (ExecutionProviders.MissingCudaLibrary() is { } why) throw new PeftOnnxException($"cuda: the CUDA execution provider cannot start: {why}");
                return Create(dir, config, generation, causal, Device.Cuda, device);
            default:
                var reason = ExecutionProviders.MissingCudaLibrary();
                if (reason == null)
                {
                    try
                    {
                        var model = Create(dir, config, generation, causal, Device.Cuda, device);
                        device.Report?.WriteLine("device: auto chose cuda");
                        return model;
                    }
                    catch (PeftOnnxException ex) when (ex.Message.StartsWith("cuda:", StringComparison.Ordinal))
                    {
                        reason = ex.Message["cuda: ".Length..];
                    }
                }
                device.Report?.WriteLine($"device: auto chose cpu ({reason})");
                return Create(dir, config, generation, causal, Device.Cpu, device);
        }
    }

    private static GenerationConfig Merge(GenerationConfig? file, ModelConfig config)
    {
        var fromModel = GenerationConfig.FromModelConfig(config);
        if (file == null) return fromModel;
        return file with
        {
            EosTokenId = file.EosTokenId ?? fromModel.EosTokenId,
            PadTokenId = file.PadTokenId ?? fromModel.PadTokenId,
            DecoderStartTokenId = file.DecoderStartTokenId ?? fromModel.DecoderStartTokenId,
        };
    }

    private static OnnxModel Create(string dir, ModelConfig config, GenerationConfig generation, bool causal, Device device, DeviceOptions options)
    {
        var sessions = new List<InferenceSession>();
        try
        {
            InferenceSession Open(string file)
            {
                var path = Path.Combine(dir, file);
                using var so = ExecutionProviders.Create(device, options);
                try
                {
                    var s = new InferenceSession(path, so);
                    sessions.Add(s);
                    return s;
                }
                catch (OnnxRuntimeException ex) when (device == Device.Cuda)
                {
                    throw ExecutionProviders.CudaFailure(ex);
                }
                catch (OnnxRuntimeException ex)
                {
                    throw new PeftOnnxException($"{path}: ONNX Runtime cannot load the model: {ex.Message.Split('\n')[0]}", ex);
                }
            }

            if (causal)
            {
                var file = CausalLmGraph.FileIn(dir);
                var graph = new CausalLmGraph(Open(file), Path.Combine(dir, file));
                return new OnnxModel(dir, config, generation, graph, null, device, options.CudaDeviceId);
            }
            var seq2seq = new Seq2SeqGraph(Open(Seq2SeqContract.EncoderFile), Open(Seq2SeqContract.DecoderFile), dir);
            return new OnnxModel(dir, config, generation, null, seq2seq, device, options.CudaDeviceId);
        }
        catch
        {
            foreach (var s in sessions) s.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts a generation: tokenizes text prompts, checks every id is inside the vocabulary and every prompt fits the
    /// context. The caller steps it (<see cref="Generator.GenerateNextToken"/>) and disposes it.
    /// </summary>
    public Generator CreateGenerator(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        var options = ResolvedOptions.Resolve(request.Options, GenerationDefaults);
        int[][] prompts = request.Prompts != null
            ? request.Prompts.Select(Encode).ToArray()
            : request.InputIds!.Select(p => p.ToArray()).ToArray();
        for (int r = 0; r < prompts.Length; r++)
        {
            if (prompts[r].Length == 0) throw new PeftOnnxException($"prompt {r} is empty (expected at least one token)");
            foreach (var id in prompts[r])
                if (id < 0 || id >= VocabSize)
                    throw new PeftOnnxException($"prompt {r}: token id {id} is outside the vocabulary (0..{VocabSize - 1})");
        }
        int[][] masks = request.AttentionMask?.Select(m => m.ToArray()).ToArray() ?? InferMask(prompts, request.Prompts == null, options);
        for (int r = 0; r < prompts.Length; r++)
            if (!masks[r].Contains(1)) throw new PeftOnnxException($"prompt {r}: every token is masked out (the attention mask has no 1)");
        if (options.PadTokenId < 0 || options.PadTokenId >= VocabSize)
            throw new PeftOnnxException($"pad token id {options.PadTokenId} is outside the vocabulary (0..{VocabSize - 1}); set GenerationOptions.PadTokenId");

        // As transformers: without max_new_tokens, max_length bounds the whole sequence, i.e. the (padded) prompt of a
        // decoder-only model or the decoder start token of an encoder-decoder one, and at least one token is generated.
        int maxSteps = options.MaxNewTokens ?? Math.Max(1, options.MaxLength - (CausalLm != null ? prompts.Max(p => p.Length) : 1));
        if (CausalLm != null && ContextLength is { } context)
        {
            // a baked soft prompt / prefix takes the first positions (its virtual tokens come before every prompt)
            int length = prompts.Max(p => p.Length);
            int virtualTokens = Math.Max(CausalLm.VirtualTokens, RowVirtualTokens(request.RowAdapters(prompts.Length)));
            if (virtualTokens + length >= context)
                throw new PeftOnnxException(virtualTokens == 0
                    ? $"prompt of {length} tokens is too long: the model's context is {context} positions ({ContextKey}), leaving no room for a new token"
                    : $"prompt of {length} tokens is too long: the model's context is {context} positions ({ContextKey}) and the baked adapter's {virtualTokens} virtual tokens take the first ones, leaving no room for a new token");
            maxSteps = Math.Min(maxSteps, context - virtualTokens - length);
        }
        var rowAdapters = request.RowAdapters(prompts.Length);
        var lease = LeaseAdapters(rowAdapters);
        try
        {
            var adapterIndices = AdapterIndices(rowAdapters, lease);
            if (adapterIndices == null)
            {
                // every row on the base: the graph's own stacks serve (index -1 is the base slot whatever the state)
                lease?.Dispose();
                lease = null;
            }
            return new Generator(this, prompts, masks, options, maxSteps, adapterIndices, lease);
        }
        catch
        {
            lease?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// transformers 4.33's _prepare_attention_mask_for_generation for ids given without a mask: ids != pad when the
    /// pad token occurs in the ids and is not an eos token, else all ones. Tokenized text attends to everything.
    /// </summary>
    private static int[][] InferMask(int[][] prompts, bool fromIds, ResolvedOptions options)
    {
        int pad = options.PadTokenId;
        bool maskPads = fromIds && !options.StopTokenIds.Contains(pad) && prompts.Any(p => p.Contains(pad));
        return prompts.Select(p => p.Select(id => maskPads && id == pad ? 0 : 1).ToArray()).ToArray();
    }

    /// <summary>
    /// Generates to the end (stop tokens or max_new_tokens) and returns ids and text.
    /// <see cref="GenerationResult.Elapsed"/> covers the model runs (prefill or encoder included), not tokenization.
    /// </summary>
    public GenerationResult Generate(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        using var generator = CreateGenerator(request);
        var watch = Stopwatch.StartNew();
        while (!generator.IsDone) generator.GenerateNextToken(cancellationToken);
        var elapsed = watch.Elapsed;
        return Result(generator, elapsed);
    }

    /// <summary><see cref="Generate"/> on the thread pool.</summary>
    public Task<GenerationResult> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken = default) =>
        Task.Run(() => Generate(request, cancellationToken), cancellationToken);

    /// <summary>
    /// Streams tokens as they are generated (each step runs on the thread pool). Cancelling stops within a step and
    /// ends the enumeration with <see cref="OperationCanceledException"/>.
    /// </summary>
    public async IAsyncEnumerable<GeneratedToken> StreamAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var generator = CreateGenerator(request);
        while (!generator.IsDone)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var tokens = await Task.Run(() => generator.GenerateNextToken(cancellationToken), cancellationToken).ConfigureAwait(false);
            foreach (var t in tokens) yield return t;
        }
    }

    /// <summary>
    /// Streams the text of a single prompt's new tokens as it grows (special tokens skipped; a chunk is held back
    /// while it ends inside a multi-byte character). Needs the folder's tokenizer.
    /// </summary>
    public async IAsyncEnumerable<string> StreamTextAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if ((request.Prompts?.Count ?? request.InputIds?.Count) != 1) throw new PeftOnnxException("StreamTextAsync takes a request with exactly one prompt");
        _ = Tokenizer;
        var ids = new List<int>();
        int emitted = 0;
        await foreach (var token in StreamAsync(request, cancellationToken).ConfigureAwait(false))
        {
            ids.Add(token.TokenId);
            var text = Decode(ids);
            if (text.Length <= emitted || text.EndsWith('\uFFFD')) continue;
            yield return text[emitted..];
            emitted = text.Length;
        }
        var final = Decode(ids);
        if (final.Length > emitted) yield return final[emitted..];
    }

    private GenerationResult Result(Generator generator, TimeSpan elapsed)
    {
        var sequences = generator.GetSequences();
        var newTokens = generator.GetNewTokens();
        string[]? text = null, newText = null;
        if (HasTokenizer)
        {
            text = sequences.Select(Decode).ToArray();
            newText = newTokens.Select(Decode).ToArray();
        }
        return new GenerationResult(sequences, newTokens, text, newText, elapsed, DeviceName);
    }

    public void Dispose()
    {
        _adapters?.Dispose();
        CausalLm?.Dispose();
        Seq2Seq?.Dispose();
        _cudaMemory?.Dispose();
    }
}
