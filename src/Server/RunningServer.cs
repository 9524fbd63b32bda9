using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;

namespace Peft.Onnx.Server;

/// <summary>A started server: its address, and stopping it (in-flight requests finish, then the models are released).</summary>
public sealed class RunningServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly IReadOnlyList<ServedModel> _models;
    private int _stopped;

    internal RunningServer(WebApplication app, Uri address, IReadOnlyList<ServedModel> models)
    {
        _app = app;
        Address = address;
        _models = models;
    }

    /// <summary>http://host:port/ the server listens on (the real port when 0 was asked).</summary>
    public Uri Address { get; }

    /// <summary>Completes when the host stops (SIGTERM, Ctrl+C, or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    /// <summary>Stops accepting, lets the requests in flight finish, then releases the models.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        await _app.StopAsync().ConfigureAwait(false);
        await ReleaseAsync().ConfigureAwait(false);
    }

    internal async Task ReleaseAsync()
    {
        foreach (var m in _models) await m.DisposeAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);
}
