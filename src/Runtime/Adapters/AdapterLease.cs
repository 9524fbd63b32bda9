namespace Peft.Onnx.Runtime.Adapters;

/// <summary>A generator's hold on the <see cref="AdapterSlots"/> it started with; disposing it ends the hold once.</summary>
internal sealed class AdapterLease(AdapterSlots slots) : IDisposable
{
    private int _disposed;

    public AdapterSlots Slots { get; } = slots;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) Slots.Release();
    }
}
