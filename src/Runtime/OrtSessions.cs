using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;

namespace Peft.Onnx.Runtime;

/// <summary>ONNX Runtime sessions on single graph files, for forwards and checks (external data is found beside the file).</summary>
public static class OrtSessions
{
    /// <summary>
    /// Session options for the CPU provider. When the model is loaded from bytes, pass the folder that holds
    /// its external data file (ORT otherwise cannot resolve relative locations).
    /// </summary>
    public static SessionOptions CpuOptions(string? externalDataFolder = null)
    {
        var o = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        if (externalDataFolder != null) o.AddSessionConfigEntry(ExternalDataFolderKey, Path.GetFullPath(externalDataFolder));
        return o;
    }

    /// <summary>
    /// Session options for the check an export runs before reporting success: the CPU provider without weight
    /// pre-packing (MLAS would copy every MatMul weight into a packed buffer: the model's size again in memory, and most
    /// of the session's start-up time) and without graph optimizations (the check runs the graph as written; serving
    /// sessions optimize), so ONNX Runtime uses the memory-mapped external data in place: a float32 check holds the
    /// model's weights once (as page-cache pages of the data file just written) plus activations.
    /// </summary>
    public static SessionOptions CheckOptions(string externalDataFolder) => CheckOptions(externalDataFolder, prepack: false);

    private static SessionOptions CheckOptions(string externalDataFolder, bool prepack)
    {
        var o = CpuOptions(externalDataFolder);
        o.AddSessionConfigEntry("session.disable_prepacking", prepack ? "0" : "1");
        o.GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL;
        // two short runs: idle pool threads sleep instead of spinning (spinning only burns CPU others could use)
        o.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        // freed buffers go back to the system at once: an fp16 model runs on the CPU provider through Casts of its weights
        // to float32, which an arena would keep for the whole session
        o.EnableCpuMemArena = false;
        return o;
    }

    /// <summary>
    /// <see cref="CheckOptions(string)"/> with weight pre-packing on, for a graph whose weight products are all MatMulNBits:
    /// without its pre-packed weights MatMulNBits dequantizes every weight to float32 on every run (measured on a
    /// bloomz-560m-sized int8 export: 4.1 s of CPU and a 1.7 GB peak for the check's two runs, against 1.0 s to pack
    /// once and 0.1 s for both runs, peak 1.1 GB). Its packed copy is the quantized bytes again, a fraction of the float
    /// model's, so the check still holds less than a float32 export's. A float weight product would be packed too
    /// (the float bytes again): a graph with a large one (a head kept float32) takes <see cref="CheckOptions(string)"/>.
    /// </summary>
    public static SessionOptions QuantizedCheckOptions(string externalDataFolder) => CheckOptions(externalDataFolder, prepack: true);

    /// <summary>
    /// A session of <paramref name="kind"/> on a model file. <see cref="ForwardSessionKind.Cuda"/> throws
    /// <see cref="PeftOnnxException"/> ("cuda: ...") when the provider or its CUDA libraries cannot load.
    /// </summary>
    public static InferenceSession Open(string modelPath, ForwardSessionKind kind = ForwardSessionKind.Cpu)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        using var options = kind switch
        {
            ForwardSessionKind.Check => CheckOptions(folder),
            ForwardSessionKind.QuantizedCheck => QuantizedCheckOptions(folder),
            ForwardSessionKind.Cuda => CudaOptions(folder),
            _ => CpuOptions(folder),
        };
        return new InferenceSession(modelPath, options);
    }

    /// <summary>Loads a model from bytes (CPU provider), its external data from <paramref name="externalDataFolder"/>.</summary>
    public static InferenceSession Open(byte[] model, string externalDataFolder)
    {
        using var options = CpuOptions(externalDataFolder);
        return new InferenceSession(model, options);
    }

    private const string ExternalDataFolderKey = "session.model_external_initializers_file_folder_path";

    // TF32 off, as for generation: a forward on CUDA is checked against the CPU's logits and the fixtures.
    private static SessionOptions CudaOptions(string externalDataFolder)
    {
        var o = ExecutionProviders.Create(Device.Cuda, DeviceOptions.Cuda);
        o.AddSessionConfigEntry(ExternalDataFolderKey, Path.GetFullPath(externalDataFolder));
        return o;
    }
}
