package android.app;

import android.content.Context;
import android.os.Bundle;

public class Instrumentation {
    public Context getTargetContext() { throw new UnsupportedOperationException("stub"); }

    public void sendStatus(int resultCode, Bundle results) { throw new UnsupportedOperationException("stub"); }
}
